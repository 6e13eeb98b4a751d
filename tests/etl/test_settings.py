import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from etl.catalog import ParameterError
from etl.settings import PROJECT_ROOT, load_settings, resolve_path
from etl.storage.layout import RunPaths, run_key


def test_defaults_come_from_pipeline_toml():
    s = load_settings(environ={})
    assert s.paths.data_path == PROJECT_ROOT / "data" / "wdbc.csv"
    assert s.results_dir == PROJECT_ROOT / "results"
    assert s.layout.runs == PROJECT_ROOT / "results" / "runs"
    assert s.paths.upload_uri == str(PROJECT_ROOT / "results" / "uploads")
    assert (s.split.test_size, s.model.random_state, s.model.C, s.model.max_iter) == (0.2, 42, 1.0, 1000)
    assert (s.retention.keep_runs, s.retention.prune_min_age_hours, s.airflow.retries, s.airflow.retry_delay_seconds) == (10, 6, 2, 30)
    assert s.layout.releases == PROJECT_ROOT / "results" / "published"


def test_environment_overrides_paths(tmp_path):
    assert load_settings(environ={}).upload.conn_id == "aws_default"
    s = load_settings(
        environ={"DATA_PATH": "other.csv", "RESULTS_DIR": str(tmp_path), "UPLOAD_URI": "s3://b/p",
                 "UPLOAD_CONN_ID": "minio"}
    )
    assert s.paths.data_path == PROJECT_ROOT / "other.csv"
    assert s.results_dir == tmp_path
    assert (s.paths.upload_uri, s.upload.conn_id) == ("s3://b/p", "minio")
    assert s.upload.drive_credentials == {"service_account": PROJECT_ROOT / "secrets" / "gdrive-service-account.json",
                                   "user": PROJECT_ROOT / "secrets" / "gdrive-user-credentials.json"}


def test_config_file_from_environment_changes_only_its_keys(tmp_path):
    (tmp_path / "alt.toml").write_text("[model]\nC = 0.5\n[retention]\nkeep_runs = 3\n")
    s = load_settings(environ={"PIPELINE_CONFIG": str(tmp_path / "alt.toml")})
    assert (s.model.C, s.retention.keep_runs) == (0.5, 3)
    assert (s.model.max_iter, s.split.test_size, s.airflow.retries) == (1000, 0.2, 2)  # the rest from pipeline.toml


@pytest.mark.parametrize(
    ("text", "message"),
    [("[modle]\nC = 1\n", "unknown section [modle]"),
     ("[model]\nc = 1\n", "unknown setting(s) in [model]: c")],
)
def test_a_misspelt_setting_is_refused(tmp_path, text, message):
    (tmp_path / "alt.toml").write_text(text)
    with pytest.raises(ParameterError, match=re.escape(message)):
        load_settings(tmp_path / "alt.toml", environ={})


def test_run_key_from_logical_date_is_stable_and_path_safe():
    date = datetime(2024, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert run_key(date, "__airflow_temporary_run_2026-11-26T08:00:00__") == "2024-03-01T103005Z"
    assert run_key(date, "manual__other") == run_key(date, None)
    assert run_key(date.replace(microsecond=42), None) == "2024-03-01T103005.000042Z"


def test_run_key_without_logical_date_uses_the_run_id():
    assert run_key(None, "manual__2026-11-26T08:00:00.1+00:00") == "manual__2026-11-26T08-00-00.1-00-00"
    with pytest.raises(ValueError):
        run_key(None, None)


def test_run_paths_are_inside_the_run_folder(tmp_path):
    run = RunPaths(tmp_path)
    files = [run.data, run.profile, run.preprocessing, run.train, run.test, run.scaler, run.model,
             run.training, run.metrics, run.predictions]
    assert len(set(files)) == len(files)
    assert all(Path(f).parent == tmp_path for f in files)


def test_relative_paths_are_taken_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("data/wdbc.csv") == PROJECT_ROOT / "data" / "wdbc.csv"
    assert resolve_path(tmp_path / "x.csv") == tmp_path / "x.csv"


def test_run_params_get_their_declared_types_whatever_the_form_sent():
    """The UI's trigger form sends C = 1.0 as the JSON number 1: the run must build the same
    estimator (and the same model bytes) as a run given 1.0."""
    s = load_settings(environ={})
    run = s.with_run_params({"C": 1, "max_iter": 1000.0, "random_state": 42.0, "test_size": 0.2, "data_path": None})
    typed = {k: run.run_params[k] for k in ("C", "max_iter", "random_state", "test_size")}
    assert typed == {"C": 1.0, "max_iter": 1000, "random_state": 42, "test_size": 0.2}
    assert run.paths.data_path == s.paths.data_path  # None: the configured
    assert [type(typed[k]) for k in ("C", "max_iter", "random_state", "test_size")] == [float, int, int, float]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("test_size", 1.0, "test_size must be > 0 and < 1, got 1.0"),
    ("test_size", "a lot", "test_size must be a number, got 'a lot'"),
    ("max_iter", 0, "max_iter must be >= 1, got 0"),
    ("C", 0, "C must be > 0, got 0"),
    ("random_state", -1, "random_state must be >= 0, got -1"),
])
def test_a_run_parameter_out_of_its_declared_bounds_is_refused_in_one_line(name, value, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        load_settings(environ={}).with_run_params({name: value})


def test_the_trigger_form_the_flags_and_the_defaults_come_from_the_one_declaration():
    """``RUN_PARAMS`` gives the DAG's ``Param`` (type, bounds, title, default) and the steps' flags."""
    from dags.pipeline_dag import dag
    from etl.settings import RUN_PARAMS
    from tests.conftest import module_help

    s = load_settings(environ={})
    form = dag.params
    assert list(form) == list(RUN_PARAMS)
    test_size = form.get_param("test_size")
    assert test_size.value == RUN_PARAMS["test_size"].default == s.split.test_size
    assert (test_size.schema["exclusiveMinimum"], test_size.schema["exclusiveMaximum"]) == (0, 1)
    assert form.get_param("max_iter").schema == {"type": "integer", "minimum": 1, "title": "Max iterations"}
    assert form.get_param("max_iter").description == RUN_PARAMS["max_iter"].description
    assert form.get_param("data_path").description.endswith(f"Empty: {s.paths.data_path}.")
    assert "--test-size" in module_help("etl.preprocess_data") and "--test-size" not in module_help("etl.load_data")


def test_a_runs_parameters_go_into_their_sections():
    """The steps read every setting from its section: a run's parameters are put there."""
    from etl.settings import RUN_PARAMS

    s = load_settings(environ={})
    run = s.with_run_params({"C": 2, "test_size": 0.3, "random_state": 7, "data_path": "", "max_iter": 50})
    assert (run.model.C, run.split.test_size, run.model.random_state, run.model.max_iter) == (2.0, 0.3, 7, 50)
    assert run.paths.data_path == s.paths.data_path  # the form's empty field: the configured input
    assert run.with_run_params({"data_path": "other.csv"}).paths.data_path == PROJECT_ROOT / "other.csv"
    assert (s.model.C, s.split.test_size) == (1.0, 0.2)  # the config's own settings are unchanged
    assert set(s.run_params) == set(RUN_PARAMS)
    with pytest.raises(ParameterError, match="unknown run parameter"):
        s.with_run_params({"c": 1})


def test_every_section_is_the_toml_section():
    """Each section's fields are exactly its keys in pipeline.toml and its run parameters, whose
    defaults are declared once, in ``RUN_PARAMS``."""
    import dataclasses
    import tomllib

    from etl.settings import DEFAULT_CONFIG_FILE, RUN_PARAMS, SECTIONS

    raw = tomllib.loads(DEFAULT_CONFIG_FILE.read_text())
    assert set(raw) == {*SECTIONS, "candidates"}
    for name, cls in SECTIONS.items():  # a run parameter's default is its declaration's
        declared = {p.name for p in RUN_PARAMS.values() if p.section == name and p.default is not None}
        assert {f.name for f in dataclasses.fields(cls)} == set(raw[name]) | declared, name
        assert not set(raw[name]) & declared, f"[{name}]: a run parameter's default is declared in RUN_PARAMS"


def test_the_layouts_name_every_file_of_the_catalog_and_no_other(tmp_path):
    """A file declared in the catalog is a typed attribute of the run's layout (a candidate's
    file of ``CandidatePaths``), at the catalog's path: declaring one without the other fails."""
    from etl import catalog
    from etl.storage.layout import CandidatePaths, ReleasePaths

    def declared(cls: type) -> set[str]:
        return {name for name in dir(cls) if type(getattr(cls, name)).__name__ == "_File"}

    run = RunPaths(tmp_path)
    assert declared(RunPaths) == {f.name for f in catalog.FILES if not f.mapped}
    for name in declared(RunPaths):
        assert getattr(run, name) == tmp_path / catalog.BY_NAME[name].path
    candidate = run.candidate("svm")
    assert {f.path for f in catalog.FILES if "{candidate}" in f.path} == {
        str(getattr(candidate, name).relative_to(tmp_path)).replace("svm", "{candidate}")
        for name in declared(CandidatePaths)}
    release = ReleasePaths(tmp_path)
    assert {getattr(release, name).name for name in declared(ReleasePaths)} == {
        "metrics.json", "model.skops", "scaler.skops", "model_card.md"}
