from fintune.data.prepare import PreparedData, data_warnings, fingerprint, prepare_data

__all__ = ["PreparedData", "data_warnings", "fingerprint", "prepare_data"]
