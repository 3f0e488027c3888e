from fintune.data.prepare import PreparedData, fingerprint, prepare_data

__all__ = ["PreparedData", "fingerprint", "prepare_data"]
