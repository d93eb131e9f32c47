"""FakeTinkerServer, driven only through the unmodified official ``tinker`` SDK (0.38.0).

Each test talks HTTP to a real server thread; training runs a real tiny LoRA model on CPU.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tinker
from tinker import types

from rlft.testing import FakeTinkerServer
from rlft.tiny import build_tiny_model

KEY = "tml-test-key"
ROWS = [
    {"prompt": "question : pick yes or no", "answer": "yes"},
    {"prompt": "say a colour red blue green", "answer": "blue"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(ROWS, folder=folder, seed=0)
    return folder


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TINKER_API_KEY", raising=False)
    monkeypatch.delenv("TINKER_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def server(tiny: Path) -> Iterator[FakeTinkerServer]:
    with FakeTinkerServer({"tiny": tiny}) as running:
        yield running


def client(server: FakeTinkerServer, key: str = KEY) -> tinker.ServiceClient:
    return tinker.ServiceClient(base_url=server.url, api_key=key)


def encode(tc: Any, text: str) -> list[int]:
    return list(tc.get_tokenizer().encode(text))


def ce_datum(prompt: list[int], answer: list[int]) -> types.Datum:
    """Cross-entropy on the answer tokens only (weights 0 on the prompt)."""
    tokens = prompt + answer
    weights = [0.0] * (len(prompt) - 1) + [1.0] * len(answer)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights},
    )


def answer_logprob(sampler: tinker.SamplingClient, prompt: list[int], token: int) -> float:
    scored = sampler.compute_logprobs(types.ModelInput.from_ints([*prompt, token])).result()
    value = scored[-1]
    assert value is not None
    return value


# --- discovery, run creation, limits -----------------------------------------------------------


def test_capabilities_list_the_served_models(server: FakeTinkerServer, tiny: Path) -> None:
    caps = tinker.RestClient(base_url=server.url, api_key=KEY).get_server_capabilities().result()
    assert [(m.model_name, m.max_context_length, m.trainable) for m in caps.supported_models] == [
        ("tiny", 256, True)
    ]


def test_a_lora_training_client_has_the_rank_and_the_model_tokenizer(
    server: FakeTinkerServer, tiny: Path
) -> None:
    tc = client(server).create_lora_training_client("tiny", rank=8).result()
    info = tc.get_info()
    assert (info.model_data.model_name, info.is_lora, info.lora_rank) == ("tiny", True, 8)
    assert tc.model_id in server.runs()
    ids = encode(tc, "pick yes or no")
    assert tc.get_tokenizer().decode(ids) == "pick yes or no"
    # The served name may also be the model's path, as on a self-hosted server.
    by_path = client(server).create_lora_training_client(str(tiny), rank=2).result()
    assert by_path.get_info().model_data.model_name == "tiny"


def test_an_unknown_model_is_refused_with_the_offered_ones(server: FakeTinkerServer) -> None:
    with pytest.raises(
        tinker.BadRequestError, match=r"'Qwen/Qwen3-8B' is not offered.*one of: tiny"
    ):
        client(server).create_lora_training_client("Qwen/Qwen3-8B", rank=8).result()


@pytest.mark.parametrize("rank", [0, 129])
def test_a_lora_rank_out_of_range_is_refused_with_the_range(
    server: FakeTinkerServer, rank: int
) -> None:
    with pytest.raises(tinker.BadRequestError, match=f"rank {rank} is out of range.*1 to 128"):
        client(server).create_lora_training_client("tiny", rank=rank).result()
    assert server.max_lora_rank == 128


def test_a_wrong_api_key_is_refused_without_echoing_keys(tiny: Path) -> None:
    with FakeTinkerServer({"tiny": tiny}, api_key="tml-right-one") as guarded:
        with pytest.raises(tinker.AuthenticationError) as caught:
            client(guarded, key="tml-wrong-one").create_lora_training_client("tiny").result()
        assert "TINKER_API_KEY" in str(caught.value)
        assert "right-one" not in str(caught.value) and "wrong-one" not in str(caught.value)
        ok = client(guarded, key="tml-right-one").create_lora_training_client("tiny", rank=2)
        assert ok.result().model_id in guarded.runs()


# --- training ----------------------------------------------------------------------------------


def test_importance_sampling_raises_the_rewarded_tokens(server: FakeTinkerServer) -> None:
    tc = client(server).create_lora_training_client("tiny", rank=4, seed=0).result()
    prompt = encode(tc, "question : pick yes or no")
    rewarded = [encode(tc, word)[0] for word in ("yes", "no", "red", "blue", "green")]

    def p_rewarded(sampler: tinker.SamplingClient) -> float:
        return sum(math.exp(answer_logprob(sampler, prompt, token)) for token in rewarded)

    sampler = tc.save_weights_and_get_sampling_client().result()
    before = p_rewarded(sampler)
    for round_ in range(4):
        params = types.SamplingParams(max_tokens=1, temperature=1.0, stop=[], seed=round_)
        result = sampler.sample(types.ModelInput.from_ints(prompt), 16, params).result()
        rewards = [1.0 if seq.tokens[0] in rewarded else 0.0 for seq in result.sequences]
        mean = sum(rewards) / len(rewards)
        data = [  # GRPO-style: group-relative advantages on the sampled token
            types.Datum(
                model_input=types.ModelInput.from_ints(prompt + seq.tokens[:-1]),
                loss_fn_inputs={
                    "target_tokens": prompt[1:] + seq.tokens,
                    "logprobs": [0.0] * (len(prompt) - 1) + list(seq.logprobs or []),
                    "advantages": [0.0] * (len(prompt) - 1) + [reward - mean],
                },
            )
            for seq, reward in zip(result.sequences, rewards, strict=True)
        ]
        fwdbwd = tc.forward_backward(data, "importance_sampling")
        step = tc.optim_step(types.AdamParams(learning_rate=0.01))
        out = fwdbwd.result()
        assert len(out.loss_fn_outputs) == 16
        # On-policy, the ratio is 1: the loss is -sum(advantages) = 0.
        assert out.metrics["loss:sum"] == pytest.approx(0.0, abs=1e-3)
        assert step.result().metrics["step"] == round_ + 1
        sampler = tc.save_weights_and_get_sampling_client().result()
    after = p_rewarded(sampler)
    assert after > before + 0.3, (before, after)
    assert server.optim_steps(tc.model_id) == 4


@pytest.mark.anyio
async def test_cross_entropy_lowers_the_loss_through_the_async_api(
    server: FakeTinkerServer,
) -> None:
    tc = await client(server).create_lora_training_client("tiny", rank=4, seed=1)
    prompt = encode(tc, "say a colour")
    datum = ce_datum(prompt, encode(tc, "green"))
    losses = []
    for _ in range(3):
        fwdbwd = tc.forward_backward([datum], "cross_entropy")
        step = tc.optim_step(types.AdamParams(learning_rate=0.003))
        out = await fwdbwd
        await step
        losses.append(out.metrics["loss:sum"])
        logprobs = out.loss_fn_outputs[0]["logprobs"].tolist()
        assert len(logprobs) == len(prompt)  # one per target token
        # Weighted cross-entropy: the loss is -logprob of the answer token alone.
        assert out.metrics["loss:sum"] == pytest.approx(-logprobs[-1], rel=1e-5)
    assert losses[0] > losses[1] > losses[2]
    # forward() scores without training.
    scored = await tc.forward([datum], "cross_entropy")
    assert scored.metrics["loss:sum"] < losses[2]
    assert server.optim_steps(tc.model_id) == 3
    sampler = await tc.save_weights_and_get_sampling_client()
    result = await sampler.sample(
        types.ModelInput.from_ints(prompt), 2, types.SamplingParams(max_tokens=3, stop=[])
    )
    assert [len(seq.tokens) for seq in result.sequences] == [3, 3]


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::FutureWarning")  # the SDK deprecates the *_async names
async def test_the_sdk_async_methods_work(server: FakeTinkerServer) -> None:
    sc = client(server)
    tc = await sc.create_lora_training_client_async("tiny", rank=2, seed=5)
    prompt = encode(tc, "say a colour")
    datum = ce_datum(prompt, encode(tc, "red"))
    fwdbwd = await tc.forward_backward_async([datum], "cross_entropy")
    step = await tc.optim_step_async(types.AdamParams(learning_rate=0.003))
    assert (await fwdbwd).metrics["loss:sum"] > 0
    assert (await step).metrics["step"] == 1.0
    saved = await (await tc.save_weights_for_sampler_async("async-1"))
    sampler = await sc.create_sampling_client_async(model_path=saved.path)
    result = await sampler.sample_async(
        types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=2, stop=[])
    )
    assert len(result.sequences[0].tokens) == 2
    scored = await sampler.compute_logprobs_async(types.ModelInput.from_ints(prompt))
    assert scored[0] is None and len(scored) == len(prompt)
    state = await (await tc.save_state_async("async-state"))
    again = await sc.create_training_client_from_state_async(state.path)
    assert server.training_step(again.model_id) == 1


def test_malformed_data_fails_the_request_with_the_fix(server: FakeTinkerServer) -> None:
    tc = client(server).create_lora_training_client("tiny", rank=2).result()
    short = types.Datum(
        model_input=types.ModelInput.from_ints([4, 5, 6]),
        loss_fn_inputs={"target_tokens": [5, 6]},
    )
    with pytest.raises(tinker.RequestFailedError, match="must be equal"):
        tc.forward_backward([short], "cross_entropy").result()
    no_adv = types.Datum(
        model_input=types.ModelInput.from_ints([4, 5]),
        loss_fn_inputs={"target_tokens": [5, 6], "logprobs": [0.0, 0.0]},
    )
    with pytest.raises(tinker.RequestFailedError, match="missing advantages"):
        tc.forward_backward([no_adv], "importance_sampling").result()


# --- sampling ----------------------------------------------------------------------------------


def test_sampling_returns_tokens_with_logprobs_and_honours_max_tokens_and_stop(
    server: FakeTinkerServer, tiny: Path
) -> None:
    sc = client(server)
    # Served under its folder path, the SDK's SamplingClient.get_tokenizer() loads offline.
    sampler = sc.create_sampling_client(base_model=str(tiny)).result()
    tokenizer = sampler.get_tokenizer()
    prompt = list(tokenizer.encode("question : pick"))
    model_input = types.ModelInput.from_ints(prompt)

    greedy = types.SamplingParams(max_tokens=4, temperature=0.0, stop=[])
    seq = sampler.sample(model_input, 1, greedy).result().sequences[0]
    assert len(seq.tokens) == 4 and seq.stop_reason == "length"
    assert seq.logprobs is not None and len(seq.logprobs) == 4
    # The logprobs are the model's: teacher-forcing the same tokens gives the same numbers.
    scored = sampler.compute_logprobs(types.ModelInput.from_ints(prompt + seq.tokens)).result()
    assert scored[len(prompt) :] == pytest.approx(seq.logprobs, abs=1e-4)

    many = sampler.sample(model_input, 3, types.SamplingParams(max_tokens=2, seed=7, stop=[]))
    assert [len(s.tokens) for s in many.result().sequences] == [2, 2, 2]

    # A stop token ends the sequence at its first occurrence, and is part of it.
    stop = seq.tokens[-1]
    until_stop = seq.tokens[: seq.tokens.index(stop) + 1]
    by_id = types.SamplingParams(max_tokens=4, temperature=0.0, stop=[stop])
    stopped = sampler.sample(model_input, 1, by_id).result().sequences[0]
    assert (stopped.tokens, stopped.stop_reason) == (until_stop, "stop")
    by_text = types.SamplingParams(max_tokens=4, temperature=0.0, stop=tokenizer.decode([stop]))
    assert sampler.sample(model_input, 1, by_text).result().sequences[0].tokens == until_stop


def test_saved_sampler_weights_sample_the_trained_behaviour(server: FakeTinkerServer) -> None:
    sc = client(server)
    tc = sc.create_lora_training_client("tiny", rank=4, seed=2).result()
    prompt = encode(tc, "say a colour")
    blue = encode(tc, "blue")
    for _ in range(6):
        tc.forward_backward([ce_datum(prompt, blue)], "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=0.02)).result()
    saved = tc.save_weights_for_sampler("blue-1").result()
    assert saved.path == f"tinker://{tc.model_id}/sampler_weights/blue-1"

    trained = sc.create_sampling_client(model_path=saved.path).result()
    base = sc.create_sampling_client(base_model="tiny").result()
    greedy = types.SamplingParams(max_tokens=1, temperature=0.0, stop=[])
    prompt_input = types.ModelInput.from_ints(prompt)
    assert trained.sample(prompt_input, 1, greedy).result().sequences[0].tokens == blue
    assert answer_logprob(trained, prompt, blue[0]) > answer_logprob(base, prompt, blue[0]) + 1.0
    # A snapshot: training on does not change what the saved sampler serves.
    frozen = answer_logprob(trained, prompt, blue[0])
    tc.forward_backward([ce_datum(prompt, encode(tc, "red"))], "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=0.5)).result()
    assert answer_logprob(trained, prompt, blue[0]) == pytest.approx(frozen)


def test_an_old_sampler_still_serves_its_snapshot_after_many_newer_ones(trainer: Any) -> None:
    server, tc, datum = trainer
    prompt = datum.model_input.to_ints()
    target = int(datum.loss_fn_inputs["target_tokens"].tolist()[-1])
    first = tc.save_weights_and_get_sampling_client().result()
    before = answer_logprob(first, prompt, target)
    for _ in range(6):  # more samplers than the server keeps built
        tc.forward_backward([datum], "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=0.003)).result()
        latest = tc.save_weights_and_get_sampling_client().result()
    assert answer_logprob(latest, prompt, target) > before
    assert answer_logprob(first, prompt, target) == pytest.approx(before, abs=1e-5)


# --- state across restarts ---------------------------------------------------------------------


def test_a_saved_state_resumes_on_a_new_server_with_its_step_count(
    tiny: Path, tmp_path: Path
) -> None:
    datum_words = ("say a colour", "red")
    with FakeTinkerServer({"tiny": tiny}, root=tmp_path) as first:
        tc = client(first).create_lora_training_client("tiny", rank=4, seed=3).result()
        datum = ce_datum(encode(tc, datum_words[0]), encode(tc, datum_words[1]))
        for _ in range(2):
            tc.forward_backward([datum], "cross_entropy")
            tc.optim_step(types.AdamParams(learning_rate=0.05)).result()
        path = tc.save_state("after-2").result().path
        assert path == f"tinker://{tc.model_id}/weights/after-2"
        expected = tc.forward([datum], "cross_entropy").result().metrics["loss:sum"]
        # The step both servers take next, on the first server.
        tc.forward_backward([datum], "cross_entropy")
        next_step = tc.optim_step(types.AdamParams(learning_rate=0.05)).result()
        after_next = tc.forward([datum], "cross_entropy").result().metrics["loss:sum"]
        assert first.checkpoint_step(path) == 2

    # The second server also has the SDK send forward_backward uncompressed (the first: zstd).
    with FakeTinkerServer({"tiny": tiny}, root=tmp_path, compress_fwdbwd=False) as second:
        sc = client(second)
        resumed = sc.create_training_client_from_state_with_optimizer(path).result()
        assert second.training_step(resumed.model_id) == 2
        assert second.optim_steps(resumed.model_id) == 0
        loss = resumed.forward([datum], "cross_entropy").result().metrics["loss:sum"]
        assert loss == pytest.approx(expected, rel=1e-5)
        resumed.forward_backward([datum], "cross_entropy")
        step = resumed.optim_step(types.AdamParams(learning_rate=0.05)).result()
        assert step.metrics is not None and step.metrics["step"] == 3
        assert next_step.metrics is not None and next_step.metrics["step"] == 3
        # Adam's moments came back too: the resumed step lands where the first server's did.
        resumed_loss = resumed.forward([datum], "cross_entropy").result().metrics["loss:sum"]
        assert resumed_loss == pytest.approx(after_next, rel=1e-5)
        assert (second.training_step(resumed.model_id), second.optim_steps(resumed.model_id)) == (
            3,
            1,
        )

        # The deprecated in-place load works too (weights and counter, fresh optimizer).
        fresh = sc.create_lora_training_client("tiny", rank=4).result()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            fresh.load_state(path).result()
        assert fresh.forward([datum], "cross_entropy").result().metrics[
            "loss:sum"
        ] == pytest.approx(expected, rel=1e-5)
        assert second.training_step(fresh.model_id) == 2

        listed = tinker.RestClient(base_url=second.url, api_key=KEY).list_checkpoints(tc.model_id)
        assert [(c.checkpoint_type, c.tinker_path) for c in listed.result().checkpoints] == [
            ("training", path)
        ]
        with pytest.raises(tinker.NotFoundError, match="no checkpoint at"):
            sc.create_training_client_from_state(path.replace("after-2", "nope")).result()


def test_a_restarted_server_refuses_sessions_it_does_not_know(tiny: Path, tmp_path: Path) -> None:
    with FakeTinkerServer({"tiny": tiny}, root=tmp_path) as first:
        sc = client(first)
        sc.create_lora_training_client("tiny", rank=2).result()
        port = int(first.url.rsplit(":", 1)[1])
    with FakeTinkerServer({"tiny": tiny}, root=tmp_path, port=port) as second:
        with pytest.raises(tinker.NotFoundError, match="create a new tinker.ServiceClient"):
            sc.create_lora_training_client("tiny", rank=2).result()
        assert client(second).create_lora_training_client("tiny", rank=2).result().model_id


# --- fault injection ---------------------------------------------------------------------------


@pytest.fixture
def trainer(tiny: Path) -> Iterator[tuple[FakeTinkerServer, Any, types.Datum]]:
    with FakeTinkerServer({"tiny": tiny}) as fresh:
        tc = client(fresh).create_lora_training_client("tiny", rank=2, seed=4).result()
        datum = ce_datum(encode(tc, "say a colour"), encode(tc, "blue"))
        yield fresh, tc, datum


def test_a_dropped_optim_step_answer_is_retried_but_applied_once(trainer: Any) -> None:
    server, tc, datum = trainer
    server.fail_next("optim_step", mode="drop_response")
    tc.forward_backward([datum], "cross_entropy")
    result = tc.optim_step(types.AdamParams(learning_rate=0.05)).result()
    assert result.metrics["step"] == 1
    assert server.requests("optim_step") == 2  # the SDK sent it again
    assert server.optim_steps(tc.model_id) == 1  # the repeat was answered, not applied
    server.wait_for_requests("optim_step", 2)
    with pytest.raises(TimeoutError, match="2 of 3 optim_step requests"):
        server.wait_for_requests("optim_step", 3, timeout=0.01)


def test_a_refused_optim_step_is_retried_and_applied_once(trainer: Any) -> None:
    server, tc, datum = trainer
    server.fail_next("optim_step", mode="refuse", times=2)
    tc.forward_backward([datum], "cross_entropy")
    assert tc.optim_step(types.AdamParams(learning_rate=0.05)).result().metrics["step"] == 1
    assert (server.requests("optim_step"), server.optim_steps(tc.model_id)) == (3, 1)


def test_a_5xx_is_retried_by_the_sdk(trainer: Any) -> None:
    server, tc, datum = trainer
    server.fail_next("forward_backward", mode="error", status=503)
    server.fail_next("retrieve_future", mode="error", status=500)
    out = tc.forward_backward([datum], "cross_entropy").result()
    assert out.metrics["loss:sum"] > 0
    assert server.requests("forward_backward") == 2
    assert server.optim_steps(tc.model_id) == 0


def test_a_failed_future_is_not_applied(trainer: Any) -> None:
    server, tc, datum = trainer
    server.fail_next("optim_step", mode="fail", message="trainer lost")
    tc.forward_backward([datum], "cross_entropy")
    with pytest.raises(tinker.RequestFailedError, match="trainer lost"):
        tc.optim_step(types.AdamParams(learning_rate=0.05)).result()
    assert server.optim_steps(tc.model_id) == 0


def test_stop_refuses_connections_and_start_serves_the_same_url(trainer: Any) -> None:
    server, tc, datum = trainer
    url = server.url
    server.stop()
    host, port = url.removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), 1):
        pass
    server.start()
    assert server.url == url
    tc.forward_backward([datum], "cross_entropy")
    assert tc.optim_step(types.AdamParams(learning_rate=0.05)).result().metrics["step"] == 1
    assert server.runs() == [tc.model_id]


def test_an_applied_step_whose_answer_is_lost_in_an_outage_is_answered_after_it(
    trainer: Any,
) -> None:
    server, tc, datum = trainer
    server.fail_next("optim_step", mode="drop_response", then_stop=True)
    tc.forward_backward([datum], "cross_entropy")
    future = tc.optim_step(types.AdamParams(learning_rate=0.05))
    server.wait_until_stopped()
    assert not server.running
    assert server.optim_steps(tc.model_id) == 1  # applied before the outage
    server.start()
    assert future.result().metrics["step"] == 1  # the SDK's retry gets the first answer
    assert server.optim_steps(tc.model_id) == 1


def test_fail_next_rejects_an_unknown_mode(server: FakeTinkerServer) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        server.fail_next("optim_step", mode="explode")  # type: ignore[arg-type]


def test_a_client_side_custom_loss_trains_through_cross_entropy(trainer: Any) -> None:
    server, tc, datum = trainer

    def neg_logprob(data: list[types.Datum], logprobs: list[Any]) -> tuple[Any, dict[str, float]]:
        weights = [d.loss_fn_inputs["weights"].to_torch() for d in data]
        loss = sum(-(lp * w).sum() for lp, w in zip(logprobs, weights, strict=True))
        return loss, {"custom:sum": float(loss.detach())}

    custom = tc.forward_backward_custom([datum], neg_logprob).result()
    plain = tc.forward([datum], "cross_entropy").result()
    assert custom.metrics["loss:sum"] == pytest.approx(plain.metrics["loss:sum"], rel=1e-5)
    tc.optim_step(types.AdamParams(learning_rate=0.003)).result()
    assert (
        tc.forward([datum], "cross_entropy").result().metrics["loss:sum"]
        < plain.metrics["loss:sum"]
    )


def _serve(tiny: Path, root: Path, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlft.testing._fake_tinker",
            "--model",
            f"tiny={tiny}",
            "--root",
            str(root),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the server prints its URL once it listens
    assert line.startswith("url="), line
    return process, line.strip().removeprefix("url=")


def test_the_server_runs_as_its_own_process_and_stops_on_sigterm(
    tiny: Path, tmp_path: Path
) -> None:
    # The kill-and-restart semantics are tested in process (a new server on the same root);
    # this covers the command line a test uses to run the server as a process it can kill.
    process, url = _serve(tiny, tmp_path)
    try:
        caps = tinker.RestClient(base_url=url, api_key=KEY).get_server_capabilities().result()
        assert [m.model_name for m in caps.supported_models] == ["tiny"]
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
