"""MicroBatcher with a fake model: routing, grouping, batch limits, failures, stop().

No asyncio plugin is installed, so each test drives its own loop with `asyncio.run`."""

from __future__ import annotations

import asyncio
import threading
import time

from fintune.serve.batcher import BatcherFailed, MicroBatcher, ServerBusy


class FakeModel:
    """Records every batch it sees; answers each text with its upper-cased self."""

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None):
        self.batches: list[list[str]] = []
        self.fail_on, self.gate = fail_on, gate
        self.started = threading.Event()

    def __call__(self, texts: list[str]) -> list[dict]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"cannot classify {self.fail_on!r}")
        return [{"label": t.upper()} for t in texts]


async def _serving(batcher: MicroBatcher, work):
    batcher.start()
    try:
        return await work()
    finally:
        await batcher.stop()


def _run(batcher: MicroBatcher, work):
    return asyncio.run(_serving(batcher, work))


def _labels(results: list[dict]) -> list[str]:
    return [r["label"] for r in results]


def test_each_caller_gets_its_own_results_in_order():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=50)
    jobs = [[f"job{j}-text{i}" for i in range(j % 4 + 1)] for j in range(12)]

    async def work():
        return await asyncio.gather(*(batcher.submit(texts) for texts in jobs))

    answers = _run(batcher, work)
    for texts, results in zip(jobs, answers, strict=True):
        assert _labels(results) == [t.upper() for t in texts]
    assert sum(len(b) for b in model.batches) == sum(len(t) for t in jobs)


def test_concurrent_submits_within_the_wait_share_one_batch():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=200)

    async def work():
        return await asyncio.gather(*(batcher.submit([f"t{i}"]) for i in range(10)))

    answers = _run(batcher, work)
    assert [_labels(a) for a in answers] == [[f"T{i}"] for i in range(10)]
    assert model.batches == [[f"t{i}" for i in range(10)]]
    stats = batcher.stats.as_dict()
    assert stats["batches"] == 1
    assert stats["texts"] == 10
    assert stats["largest_batch"] == 10
    assert stats["mean_batch"] == 10.0
    assert stats["model_busy_s"] >= 0


def test_sequential_submits_are_separate_batches():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=1)

    async def work():
        return [await batcher.submit([f"t{i}"]) for i in range(3)]

    answers = _run(batcher, work)
    assert [_labels(a) for a in answers] == [["T0"], ["T1"], ["T2"]]
    assert model.batches == [["t0"], ["t1"], ["t2"]]
    assert batcher.stats.as_dict()["batches"] == 3
    assert batcher.stats.as_dict()["mean_batch"] == 1.0


def test_a_full_batch_does_not_wait_for_the_deadline():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=4, max_wait_ms=5000)

    async def work():
        start = time.perf_counter()
        answers = await asyncio.gather(*(batcher.submit([f"t{i}"]) for i in range(4)))
        return answers, time.perf_counter() - start

    answers, elapsed = _run(batcher, work)
    assert [_labels(a) for a in answers] == [[f"T{i}"] for i in range(4)]
    assert elapsed < 2.0  # the 5 s wait was cut short by a full batch
    assert model.batches == [["t0", "t1", "t2", "t3"]]


def test_jobs_queued_while_the_model_runs_form_the_next_batch_without_waiting():
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=0)

    async def work():
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.to_thread(model.started.wait, 5)
        rest = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(10)]
        await asyncio.sleep(0.05)  # all ten are queued behind the busy model
        gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = _run(batcher, work)
    assert _labels(first) == ["FIRST"]
    assert [_labels(a) for a in rest] == [[f"T{i}"] for i in range(10)]
    assert model.batches == [["first"], [f"t{i}" for i in range(10)]]


def test_single_text_jobs_are_split_at_max_batch():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=4, max_wait_ms=100)

    async def work():
        return await asyncio.gather(*(batcher.submit([f"t{i}"]) for i in range(10)))

    answers = _run(batcher, work)
    assert [_labels(a) for a in answers] == [[f"T{i}"] for i in range(10)]
    assert all(len(b) <= 4 for b in model.batches)
    assert [t for b in model.batches for t in b] == [f"t{i}" for i in range(10)]
    assert batcher.stats.largest == 4


def test_a_single_job_larger_than_max_batch_runs_whole():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=3, max_wait_ms=20)
    texts = [f"t{i}" for i in range(7)]

    async def work():
        return await batcher.submit(texts)

    assert _labels(_run(batcher, work)) == [t.upper() for t in texts]
    assert model.batches == [texts]
    assert batcher.stats.largest == 7


def test_jobs_are_not_combined_past_max_batch():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=4, max_wait_ms=100)

    async def work():
        return await asyncio.gather(
            batcher.submit(["a", "b", "c"]), batcher.submit(["d", "e", "f"])
        )

    first, second = _run(batcher, work)
    assert _labels(first) == ["A", "B", "C"] and _labels(second) == ["D", "E", "F"]
    assert all(len(b) <= 4 for b in model.batches), model.batches


def test_a_failing_batch_fails_only_the_bad_caller_and_the_worker_keeps_serving():
    model = FakeModel(fail_on="boom")
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=100)

    async def work():
        failed = await asyncio.gather(
            batcher.submit(["fine"]),
            batcher.submit(["boom"]),
            batcher.submit(["also", "fine"]),
            return_exceptions=True,
        )
        later = await batcher.submit(["later"])
        together = await asyncio.gather(batcher.submit(["x"]), batcher.submit(["y"]))
        return failed, later, together

    (fine, boom, also), later, together = _run(batcher, work)
    # the batch failed as a whole, then each job ran alone
    assert model.batches[:4] == [
        ["fine", "boom", "also", "fine"],
        ["fine"],
        ["boom"],
        ["also", "fine"],
    ]
    assert _labels(fine) == ["FINE"] and _labels(also) == ["ALSO", "FINE"]
    assert isinstance(boom, ValueError) and "boom" in str(boom)
    assert _labels(later) == ["LATER"]
    assert [_labels(r) for r in together] == [["X"], ["Y"]]
    # the failed batch and the failed job are not counted as served
    assert batcher.stats.texts == 6


def test_a_cancelled_caller_does_not_disturb_the_others():
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=50)

    async def work():
        leaving = asyncio.ensure_future(batcher.submit(["leaving"]))
        staying = asyncio.ensure_future(batcher.submit(["staying"]))
        await asyncio.to_thread(model.started.wait, 5)
        leaving.cancel()
        gate.set()
        result = await staying
        after = await batcher.submit(["after"])
        return leaving.cancelled(), result, after

    cancelled, result, after = _run(batcher, work)
    assert cancelled
    assert _labels(result) == ["STAYING"]
    assert _labels(after) == ["AFTER"]


def test_stop_ends_the_worker_cleanly():
    batcher = MicroBatcher(FakeModel(), max_batch=8, max_wait_ms=1)

    async def main():
        batcher.start()
        await batcher.submit(["one"])
        worker = batcher._worker
        await asyncio.wait_for(batcher.stop(), 2)
        return worker

    worker = asyncio.run(main())
    assert worker.done() and worker.cancelled()


def test_stop_without_start_is_harmless():
    batcher = MicroBatcher(FakeModel())
    asyncio.run(batcher.stop())


def test_stop_while_idle_is_prompt():
    batcher = MicroBatcher(FakeModel(), max_wait_ms=10_000)

    async def main():
        batcher.start()
        await asyncio.sleep(0)
        start = time.perf_counter()
        await asyncio.wait_for(batcher.stop(), 2)
        return time.perf_counter() - start

    assert asyncio.run(main()) < 1.0


def test_stop_does_not_leave_a_waiting_caller_hanging():
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, max_batch=8, max_wait_ms=1)

    async def main():
        batcher.start()
        caller = asyncio.ensure_future(batcher.submit(["slow"]))
        await asyncio.to_thread(model.started.wait, 5)
        await batcher.stop()
        try:
            await asyncio.wait_for(asyncio.shield(caller), 1)
        except TimeoutError:
            return False
        except Exception:
            return True  # an error is fine: the caller was answered
        finally:
            gate.set()
            caller.cancel()
        return True

    assert asyncio.run(main()), "the caller was never answered after stop()"


def test_stop_during_the_one_by_one_retry_answers_every_caller():
    gate, retrying = threading.Event(), threading.Event()

    def model(texts):
        if "boom" in texts and len(texts) > 1:
            raise ValueError("the batch fails")
        retrying.set()
        gate.wait(5)  # the first job alone is slow; stop() comes meanwhile
        return [{"label": t} for t in texts]

    batcher = MicroBatcher(model, max_batch=8, max_wait_ms=50)

    async def main():
        batcher.start()
        callers = [asyncio.ensure_future(batcher.submit([t])) for t in ("a", "boom", "c")]
        await asyncio.to_thread(retrying.wait, 5)
        await batcher.stop()
        gate.set()
        done, pending = await asyncio.wait(callers, timeout=1)
        return len(pending)

    assert asyncio.run(main()) == 0, "a caller was left waiting after stop()"


def test_the_batcher_can_be_started_again_after_stop():
    batcher = MicroBatcher(FakeModel(), max_batch=8, max_wait_ms=1)

    async def once():
        batcher.start()
        try:
            return await asyncio.wait_for(batcher.submit(["again"]), 1)
        finally:
            await batcher.stop()

    assert _labels(asyncio.run(once())) == ["AGAIN"]
    assert _labels(asyncio.run(once())) == ["AGAIN"]


def test_a_full_queue_refuses_at_once_and_takes_texts_again_once_it_drains():
    """The queue had no bound: under overload requests piled up in memory until clients
    gave up, with no signal that the server was saturated."""
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, max_batch=2, max_wait_ms=1, max_queue=3)

    async def work():
        running = asyncio.ensure_future(batcher.submit(["running"]))
        await asyncio.to_thread(model.started.wait, 5)  # in the model: no longer waiting
        queued = [asyncio.ensure_future(batcher.submit(texts)) for texts in (["a", "b"], ["c"])]
        await asyncio.sleep(0.01)
        refusals = []
        for texts in (["d"], ["e", "f"]):
            try:
                await asyncio.wait_for(batcher.submit(texts), 1)
            except ServerBusy as error:
                refusals.append(str(error))
        waiting = batcher.stats.as_dict()
        gate.set()
        answers = await asyncio.gather(running, *queued)
        after = await batcher.submit(["d", "e", "f"])  # drained: room again
        return refusals, waiting, answers, after, batcher.stats.as_dict()

    refusals, waiting, answers, after, end = _run(batcher, work)
    assert len(refusals) == 2
    assert "busy" in refusals[0] and "3 texts are waiting" in refusals[0], refusals[0]
    assert waiting["waiting"] == 3 and waiting["refused"] == 2
    assert [_labels(a) for a in answers] == [["RUNNING"], ["A", "B"], ["C"]]
    assert _labels(after) == ["D", "E", "F"]
    assert end["waiting"] == 0 and end["refused"] == 2
    assert ["d"] not in model.batches, "a refused text reached the model"


def test_a_caller_gone_before_its_texts_reach_the_model_costs_no_model_time_or_queue_room():
    """Under overload, a request whose client had given up still ran in the model and held
    its place in the queue: the texts of cancelled callers are now dropped, and no longer
    count as waiting."""
    gate = threading.Event()
    model = FakeModel(gate=gate)
    batcher = MicroBatcher(model, max_batch=4, max_wait_ms=20, max_queue=4)

    async def work():
        running = asyncio.ensure_future(batcher.submit(["running"]))
        await asyncio.to_thread(model.started.wait, 5)  # the model is busy with it
        gone = asyncio.ensure_future(batcher.submit(["gone-1", "gone-2", "gone-3"]))
        staying = asyncio.ensure_future(batcher.submit(["staying"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.sleep(0.01)
        waiting = batcher.stats.waiting
        room = asyncio.ensure_future(batcher.submit(["more-1", "more-2", "more-3"]))
        await asyncio.sleep(0.01)
        gate.set()
        answers = await asyncio.gather(running, staying, room)
        return waiting, answers, batcher.stats.as_dict()

    waiting, answers, end = _run(batcher, work)
    assert waiting == 1  # "staying" alone: the gone caller's 3 texts no longer count
    assert [_labels(a) for a in answers] == [
        ["RUNNING"],
        ["STAYING"],
        ["MORE-1", "MORE-2", "MORE-3"],
    ]
    assert not any(t.startswith("gone") for batch in model.batches for t in batch)
    assert end["waiting"] == 0 and end["texts"] == 5


def test_a_caller_gone_while_its_batch_gathers_is_left_out_of_the_model_call():
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=200)

    async def work():
        staying = asyncio.ensure_future(batcher.submit(["staying"]))
        gone = asyncio.ensure_future(batcher.submit(["gone"]))
        await asyncio.sleep(0.05)  # both taken into the batch, which waits for more
        gone.cancel()
        return await staying, batcher.stats

    result, stats = _run(batcher, work)
    assert _labels(result) == ["STAYING"]
    assert model.batches == [["staying"]]
    assert stats.waiting == 0


def test_stop_while_a_batch_gathers_answers_the_callers_already_taken():
    """stop() during the max-wait window lost the jobs the worker had taken off the queue
    for the batch it was gathering: their callers waited forever."""
    model = FakeModel()
    batcher = MicroBatcher(model, max_batch=8, max_wait_ms=10_000)

    async def main():
        batcher.start()
        callers = [asyncio.ensure_future(batcher.submit([t])) for t in ("a", "b")]
        await asyncio.sleep(0.05)  # both taken; the batch waits for more
        await batcher.stop()
        done, pending = await asyncio.wait(callers, timeout=1)
        for caller in pending:
            caller.cancel()
        return len(pending), [str(c.exception()) for c in done]

    pending, errors = asyncio.run(main())
    assert pending == 0, "a caller was left waiting after stop()"
    assert errors == ["the server is shutting down"] * 2
    assert model.batches == []


def test_stop_in_the_instant_a_request_arrives_still_stops_the_worker():
    """On Python 3.11, asyncio.wait_for returned the queue's new job when the worker was
    cancelled just after that job arrived, and dropped the cancel: stop() then waited
    forever on a worker blocked on an empty queue, and the server did not stop. Each
    offset (event loop turns between the request and stop) lands the cancel elsewhere."""
    model = FakeModel()

    async def main(hops: int) -> bool:
        batcher = MicroBatcher(model, max_batch=8, max_wait_ms=10_000)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.01)  # taken; the batch waits for more
        loop = asyncio.get_running_loop()
        stopping = loop.create_future()

        def hop(left: int) -> None:
            if left:
                loop.call_soon(hop, left - 1)
            else:
                stopping.set_result(asyncio.ensure_future(batcher.stop()))

        second = asyncio.ensure_future(batcher.submit(["second"]))
        loop.call_soon(hop, hops)
        stop = await stopping
        done, _ = await asyncio.wait({stop}, timeout=2)
        for task in (first, second, stop):
            task.cancel()
        if batcher._worker is not None:
            batcher._worker.cancel()
        await asyncio.gather(first, second, stop, return_exceptions=True)
        return stop in done

    stopped = {hops: asyncio.run(main(hops)) for hops in range(8)}
    assert all(stopped.values()), f"stop() hung after these loop turns: {stopped}"


def test_the_one_by_one_retry_skips_a_caller_gone_meanwhile():
    """After a failed batch, each job ran again alone: a job whose caller had gone (client
    disconnected) during the retry was still sent to the model."""
    gate, retrying, seen = threading.Event(), threading.Event(), []

    def model(texts):
        seen.append(list(texts))
        if "boom" in texts and len(texts) > 1:
            raise ValueError("the batch fails")
        retrying.set()
        gate.wait(5)  # the first job alone is slow; its neighbour's caller leaves meanwhile
        return [{"label": t.upper()} for t in texts]

    batcher = MicroBatcher(model, max_batch=8, max_wait_ms=50)

    async def work():
        callers = [asyncio.ensure_future(batcher.submit([t])) for t in ("a", "gone", "boom")]
        await asyncio.to_thread(retrying.wait, 5)
        callers[1].cancel()
        gate.set()
        return [await callers[0], await callers[2]]

    answers = _run(batcher, work)
    assert [_labels(a) for a in answers] == [["A"], ["BOOM"]]
    assert seen == [["a", "gone", "boom"], ["a"], ["boom"]]


def test_a_worker_that_dies_on_a_bug_answers_every_caller_with_that_bug_not_stopping():
    """A bug past the model call (here a model answering None) ended the worker: its callers
    waited for ever, and every later request was refused as if the server were stopping
    (ServerStopping, a 503). They now get BatcherFailed naming the bug, at once."""
    batcher = MicroBatcher(lambda texts: None, max_batch=4, max_wait_ms=1)

    async def work():
        first = await asyncio.wait_for(
            asyncio.gather(batcher.submit(["a"]), return_exceptions=True), 5
        )
        later = await asyncio.gather(batcher.submit(["b"]), return_exceptions=True)
        return first + later

    errors = _run(batcher, work)
    for error in errors:
        assert isinstance(error, BatcherFailed), repr(error)
        assert "TypeError" in str(error)
    assert batcher.failed is not None


def _depth(error: BaseException) -> int:
    depth, tb = 0, error.__traceback__
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    return depth


def test_a_failed_worker_raises_a_fresh_error_each_time_so_nothing_piles_up():
    """After the worker stopped on a bug, every submit raised the one stored BatcherFailed:
    re-raising an exception object prepends to its traceback, so each request to the failed
    server added its frames (and their locals: the request, its texts) to that one object,
    kept for the server's life (traceback depth 2 after one request, 400 after 200)."""
    batcher = MicroBatcher(lambda texts: None, max_batch=4, max_wait_ms=1)

    async def work():
        await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
        later = []
        for _ in range(200):
            try:
                await batcher.submit(["c"])
            except BatcherFailed as error:
                later.append(error)
        return later

    later = _run(batcher, work)
    assert len(later) == 200 and all("TypeError" in str(e) for e in later)
    assert _depth(later[-1]) == _depth(later[0]) <= 2
    assert _depth(batcher.failed) <= 1


def test_a_failed_model_call_counts_its_model_time_and_is_counted_as_failed():
    """model_busy_s left out the time of calls that raised: a server whose batches
    failed and were retried one by one looked idle for that time."""

    class SlowModel(FakeModel):
        def __call__(self, texts):
            time.sleep(0.1)
            return super().__call__(texts)

    model = SlowModel(fail_on="boom")
    batcher = MicroBatcher(model, max_batch=100, max_wait_ms=100)

    async def work():
        await asyncio.gather(
            batcher.submit(["fine"]), batcher.submit(["boom"]), return_exceptions=True
        )

    _run(batcher, work)
    assert model.batches == [["fine", "boom"], ["fine"], ["boom"]]
    stats = batcher.stats.as_dict()
    assert stats["failed_calls"] == 2
    assert stats["batches"] == 1 and stats["texts"] == 1
    assert stats["model_busy_s"] >= 0.3
