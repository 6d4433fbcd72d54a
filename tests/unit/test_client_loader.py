"""load_thresholds(): mounted document + env, node-aware, with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from client_fixtures import (
    BIG,
    SMALL,
    envfrom,
    two_class_document,
    write_configmap_volume,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_thresholds.api.result import Thresholds
from inference_thresholds.api.thresholds_document import ClassEntry, ThresholdsDocument
from inference_thresholds.client import (
    DEFAULT_PATH,
    ThresholdsError,
    ThresholdsNotFoundError,
    load_thresholds,
)


@pytest.fixture
def mounted(tmp_path: Path) -> Path:
    return write_configmap_volume(tmp_path / "mnt", two_class_document())


def test_node_in_map_gets_its_class(mounted: Path) -> None:
    loaded = load_thresholds(mounted, env={"NODE_NAME": "n-big-2"})
    assert loaded.selection == "node-class"
    assert loaded.class_name == "cpu-big"
    assert loaded.thresholds == BIG
    assert loaded.sources["min_tokens_per_second"].kind == "class"
    assert "n-big-2" in loaded.selection_reason and "cpu-big" in loaded.selection_reason


def test_node_argument_wins_over_env(mounted: Path) -> None:
    loaded = load_thresholds(mounted, node_name="n-small", env={"NODE_NAME": "n-big-1"})
    assert loaded.class_name == "cpu-small"
    assert loaded.thresholds == SMALL


@pytest.mark.parametrize(
    ("env", "legacy", "why"),
    [
        ({}, False, "NODE_NAME not set"),
        ({"NODE_NAME": "somewhere-else"}, False, "is in none of the document's classes"),
        ({"NODE_NAME": "somewhere-else"}, True, "is in none of the document's classes"),
        ({"NODE_NAME": "n-orphan"}, True, "does not define"),
    ],
)
def test_falls_back_to_effective_and_says_why(
    tmp_path: Path, env: dict[str, str], legacy: bool, why: str
) -> None:
    mounted = write_configmap_volume(tmp_path / "mnt", two_class_document(legacy=legacy))
    loaded = load_thresholds(mounted, env=env)
    assert loaded.selection == "effective"
    assert loaded.thresholds == SMALL
    assert why in loaded.selection_reason
    assert "cpu-small" in loaded.selection_reason  # names the effective class
    assert loaded.sources["max_latency_ms"].kind == "effective"


def test_path_from_env_variable_and_direct_file(mounted: Path) -> None:
    via_env = load_thresholds(env={"INFERENCE_THRESHOLDS_PATH": str(mounted)})
    assert via_env.document_path == str(mounted / "thresholds.json")
    direct = load_thresholds(mounted / "thresholds.json", env={"NODE_NAME": "n-big-1"})
    assert direct.class_name == "cpu-big"


def test_default_path_is_documented_location() -> None:
    assert DEFAULT_PATH == "/etc/inference-thresholds"
    with pytest.raises(ThresholdsNotFoundError, match="/etc/inference-thresholds"):
        load_thresholds(env={})


def test_explicit_env_override_wins_and_is_recorded(mounted: Path) -> None:
    env = {"NODE_NAME": "n-big-1", "BITNET_MIN_TOKENS_PER_SECOND": "30"}
    loaded = load_thresholds(mounted, env=env)
    assert loaded.thresholds.min_tokens_per_second == 30.0
    assert loaded.sources["min_tokens_per_second"].kind == "env"
    assert "BITNET_MIN_TOKENS_PER_SECOND" in loaded.sources["min_tokens_per_second"].detail
    # the rest still comes from the node's class
    assert loaded.thresholds.max_latency_ms == BIG.max_latency_ms


def test_envfrom_values_do_not_erase_the_node_class(mounted: Path) -> None:
    """envFrom injects the effective (slowest) values; the node's class must still win,
    also where the environment lacks the published list (an older operator's ConfigMap):
    a value equal to the ConfigMap's own key is recognised."""
    env = {"NODE_NAME": "n-big-1"}
    for key in ("BITNET_MIN_TOKENS_PER_SECOND", "BITNET_MAX_LATENCY_MS", "BITNET_MAX_MEMORY_MB"):
        env[key] = (mounted / key).read_text()
    loaded = load_thresholds(mounted, env=env)
    assert loaded.thresholds == BIG
    assert all(s.kind == "class" for s in loaded.sources.values())
    assert any("envFrom" in note for note in loaded.notes)


def test_envfrom_recognised_without_key_files(tmp_path: Path) -> None:
    mnt = write_configmap_volume(tmp_path / "m", two_class_document(), with_env_keys=False)
    env = {"NODE_NAME": "n-big-1", "BITNET_MIN_TOKENS_PER_SECOND": "5.2"}
    assert load_thresholds(mnt, env=env).thresholds.min_tokens_per_second == 21.0


def test_custom_prefix(mounted: Path) -> None:
    env = {
        "INFERENCE_THRESHOLDS_ENV_PREFIX": "LLM_",
        "LLM_MAX_LATENCY_MS": "1234",
        "BITNET_MAX_LATENCY_MS": "99",
    }
    loaded = load_thresholds(mounted, env=env)
    assert loaded.env_prefix == "LLM_"
    assert loaded.thresholds.max_latency_ms == 1234.0
    assert load_thresholds(mounted, env=env, env_prefix="BITNET_").thresholds.max_latency_ms == 99


def test_apply_env_false_ignores_variables(mounted: Path) -> None:
    env = {"BITNET_MIN_TOKENS_PER_SECOND": "abc"}
    assert load_thresholds(mounted, env=env, apply_env=False).thresholds == SMALL


def test_env_only_without_document(tmp_path: Path) -> None:
    env = {
        "BITNET_MIN_TOKENS_PER_SECOND": "12",
        "BITNET_MAX_MEMORY_MB": " 4096 ",
        "BITNET_MAX_LATENCY_MS": "",
    }
    loaded = load_thresholds(tmp_path / "absent", env=env)
    assert loaded.selection == "env-only"
    assert loaded.thresholds.min_tokens_per_second == 12.0
    assert loaded.thresholds.max_memory_usage_mb == 4096.0
    assert loaded.thresholds.max_latency_ms is None  # empty means unset
    assert loaded.document is None


@pytest.mark.parametrize("raw", ["abc", "nan", "inf", "-5", "0", "1e999", "12 tok/s"])
def test_bad_variable_names_variable_and_fix(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ThresholdsError) as err:
        load_thresholds(tmp_path, env={"BITNET_MAX_LATENCY_MS": raw})
    assert err.value.source == "BITNET_MAX_LATENCY_MS"
    assert "BITNET_MAX_LATENCY_MS" in str(err.value)
    assert "set BITNET_MAX_LATENCY_MS to a positive number" in str(err.value)


def test_infeasible_class_is_reported(mounted: Path) -> None:
    loaded = load_thresholds(mounted, env={"NODE_NAME": "n-tiny"})
    assert not loaded.feasible
    assert "1.3 GiB" in (loaded.infeasible_reason or "")
    report = loaded.validate_observed({"tokens_per_second": 100})
    assert not report.passed
    assert any("infeasible" in p for p in report.problems)


def test_invalid_json_names_file(tmp_path: Path) -> None:
    mnt = write_configmap_volume(tmp_path / "m", "{not json")
    with pytest.raises(ThresholdsError, match=r"thresholds.json is not valid JSON \(line 1"):
        load_thresholds(mnt, env={})


def test_schema_error_names_field(tmp_path: Path) -> None:
    data = two_class_document().wire()
    data["classes"]["cpu-big"]["thresholds"]["minTokensPerSecnd"] = 3  # type: ignore[index]
    mnt = write_configmap_volume(tmp_path / "m", json.dumps(data))
    with pytest.raises(ThresholdsError) as err:
        load_thresholds(mnt, env={})
    assert "classes.cpu-big.thresholds.minTokensPerSecnd" in str(err.value)
    assert err.value.source is not None and err.value.source.endswith("minTokensPerSecnd")


def test_directory_in_place_of_document_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "thresholds.json").mkdir()  # exists but is not a file
    with pytest.raises(ThresholdsNotFoundError):
        load_thresholds(tmp_path, env={})


def _older(doc: ThresholdsDocument, **effective: float) -> ThresholdsDocument:
    """The document as it was before a CR update changed its effective thresholds."""
    old = doc.model_copy(update={"effective": doc.effective.model_copy(update=effective)})
    return old.model_copy(update={"content_hash": "sha256:older"})


def test_envfrom_of_an_older_configmap_does_not_override_the_mounted_document(
    mounted: Path,
) -> None:
    """What the real node showed: the pod started with BITNET_MAX_MEMORY_MB=2377, the CR
    update brought 2048 into the mounted file, and the stale variable won as "from env"."""
    current = two_class_document()
    env = {"NODE_NAME": "n-small", **envfrom(_older(current, max_memory_usage_mb=2377.0))}
    assert env["BITNET_MAX_MEMORY_MB"] == "2377"
    loaded = load_thresholds(mounted, env=env)
    assert loaded.thresholds == SMALL and loaded.thresholds.max_memory_usage_mb == 2048
    assert loaded.sources["max_memory_usage_mb"].kind == "class"
    (note,) = loaded.notes
    assert note.startswith("env from an older ConfigMap (INFERENCE_THRESHOLDS_CONTENT_HASH")
    assert ": BITNET_MAX_MEMORY_MB=2377, now 2048; its BITNET_* variables are ignored" in note
    assert note.endswith("restart the pod to refresh its environment")
    # On an effective-only pod (no NODE_NAME) as well: the mounted effective values win.
    del env["NODE_NAME"]
    assert load_thresholds(mounted, env=env).thresholds == SMALL


def test_envfrom_of_the_current_configmap_is_recognised_without_a_note(mounted: Path) -> None:
    env = {"NODE_NAME": "n-small", **envfrom(two_class_document())}
    loaded = load_thresholds(mounted, env=env)
    assert loaded.thresholds == SMALL
    assert all(s.kind == "class" for s in loaded.sources.values())
    assert loaded.notes == []  # the node's class equals the effective one: nothing to say


def test_user_variables_win_over_a_stale_or_current_envfrom(mounted: Path) -> None:
    """env: wins over envFrom in Kubernetes: a value other than the published one is the
    user's, whether the ConfigMap changed since the pod started or not."""
    for published in (_older(two_class_document(), max_latency_ms=99.0), two_class_document()):
        env = {
            "NODE_NAME": "n-big-1",
            **envfrom(published),
            "BITNET_MAX_LATENCY_MS": "1234",  # under env:, over the ConfigMap's key
            "BITNET_MIN_SPEEDUP_FACTOR": "3",  # a key the ConfigMap does not publish
        }
        loaded = load_thresholds(mounted, env=env)
        assert loaded.thresholds.max_latency_ms == 1234
        assert loaded.thresholds.min_speedup_factor == 3
        assert loaded.sources["max_latency_ms"].detail == "env BITNET_MAX_LATENCY_MS"
        # the envFrom copies of the other keys do not mask the node's class
        assert loaded.thresholds.min_tokens_per_second == BIG.min_tokens_per_second
        assert loaded.sources["min_tokens_per_second"].kind == "class"


def test_user_variables_win_without_a_configmap_hash(mounted: Path) -> None:
    """No hash and no published list in the environment: nothing came through envFrom of
    this operator's ConfigMap, so a value differing from the ConfigMap's is the user's."""
    env = {"NODE_NAME": "n-big-1", "BITNET_MAX_MEMORY_MB": "2377"}
    loaded = load_thresholds(mounted, env=env)
    assert loaded.thresholds.max_memory_usage_mb == 2377
    assert loaded.sources["max_memory_usage_mb"].kind == "env"


def test_envfrom_without_a_mounted_document_is_used(tmp_path: Path) -> None:
    """envFrom alone (no volume): the variables are all there is, published or not."""
    env = envfrom(two_class_document())
    loaded = load_thresholds(tmp_path / "absent", env=env)
    assert loaded.selection == "env-only"
    assert loaded.thresholds == SMALL


@pytest.mark.parametrize("published", ["", "garbage", "=1,,BITNET_MAX_MEMORY_MB", "x=" * 5000])
def test_a_malformed_published_list_recognises_nothing(mounted: Path, published: str) -> None:
    env = {"NODE_NAME": "n-big-1", "BITNET_MAX_MEMORY_MB": "4096",
           "INFERENCE_THRESHOLDS_PUBLISHED_ENV": published}  # fmt: skip
    assert load_thresholds(mounted, env=env).thresholds.max_memory_usage_mb == 4096


def test_path_may_name_a_document_file_with_any_name(tmp_path: Path) -> None:
    file = tmp_path / "thresholds-copy"
    file.write_text(json.dumps(two_class_document().wire()))
    assert load_thresholds(file, env={"NODE_NAME": "n-small"}).class_name == "cpu-small"


def test_loaded_thresholds_validate_is_the_pod_api(mounted: Path) -> None:
    loaded = load_thresholds(mounted, env={"NODE_NAME": "n-big-1"})
    report = loaded.validate({"tokens_per_second": 25, "time_to_first_token_ms": 700})
    assert [r.threshold for r in report.failures] == ["max_time_to_first_token_ms"]
    assert report == loaded.validate_observed(
        {"tokens_per_second": 25, "time_to_first_token_ms": 700}
    )


_limit = st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False)
_thresholds = st.builds(
    Thresholds,
    min_tokens_per_second=_limit,
    max_time_to_first_token_ms=_limit,
    max_latency_ms=_limit,
    max_memory_usage_mb=_limit,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    classes=st.dictionaries(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True), _thresholds, min_size=1, max_size=4
    ),
    data=st.data(),
)
def test_node_class_or_effective_for_any_document(
    tmp_path_factory: pytest.TempPathFactory, classes: dict[str, Thresholds], data: st.DataObject
) -> None:
    names = sorted(classes)
    nodes = data.draw(
        st.dictionaries(
            st.from_regex(r"n[0-9]{1,3}", fullmatch=True), st.sampled_from(names), max_size=6
        )
    )
    effective_class = data.draw(st.sampled_from(names))
    legacy = data.draw(st.booleans())  # the node map older operators wrote, or class lists
    doc = ThresholdsDocument(
        owner="x",
        namespace="ns",
        generation=1,
        content_hash="h",
        effective_class=effective_class,
        effective=classes[effective_class],
        classes={
            n: ClassEntry(
                hardware_summary=n,
                node_count=1,
                feasible=True,
                thresholds=t,
                nodes=[] if legacy else sorted(k for k, c in nodes.items() if c == n),
            )
            for n, t in classes.items()
        },
        nodes=nodes if legacy else None,
    )
    mnt = write_configmap_volume(tmp_path_factory.mktemp("m") / "mnt", doc)
    node = data.draw(st.sampled_from([*nodes, "unknown-node"]))
    # envFrom as Kubernetes would inject it: the ConfigMap's own env keys.
    env = {"NODE_NAME": node, **envfrom(doc)}
    loaded = load_thresholds(mnt, env=env)
    if node in nodes:
        assert loaded.class_name == nodes[node]
        assert loaded.thresholds == classes[nodes[node]]
    else:
        assert loaded.selection == "effective"
        assert loaded.thresholds == classes[effective_class]
    assert all(s.kind != "env" for s in loaded.sources.values())
