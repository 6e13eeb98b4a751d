"""Signed releases (etl.releases.signing, etl.releases.reader): every way of changing a published
release is refused by every reader, in one line naming the release, with nothing scored, nothing
sent, nothing of the release run, and the results folder left byte for byte as it was."""

import base64
import hashlib
import json
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from etl.catalog import IntegrityError, ParameterError
from etl.outcomes import promises
from etl.predict import predict
from etl.releases import signing
from etl.releases.reader import current_release, open_release, read_release
from etl.releases.registry import publish
from etl.score import process
from etl.settings import load_settings
from etl.storage.inbox import claim
from etl.storage.layout import InboxPaths, ResultsPaths
from etl.ui.history import signature_status
from etl.upload_results import upload_results
from tests.conftest import inputs_of, run_main


class _Exploit:
    """Unpickling this runs code: it creates the file named in its argument."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def site(tmp_path, evaluated_runs, small_csv):
    """A results folder with one published release (the ``new`` run) and, in the scoring inbox,
    one batch waiting in ``queued/``."""
    results = tmp_path / "results"
    shutil.copytree(evaluated_runs["new"], results / "runs" / "new")
    publish(inputs_of(results / "runs" / "new"), results)
    inbox = InboxPaths(tmp_path / "incoming")
    inbox.root.mkdir()
    shutil.copy(small_csv, inbox.root / "batch.csv")
    claim(inbox)
    return results, inbox


def _state(folder: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target under ``folder``."""
    out: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink():
                out[str(path.relative_to(folder))] = "-> " + os.readlink(path)
            elif path.is_file():
                out[str(path.relative_to(folder))] = path.read_bytes()
    return out


def _rewrite_manifest(release: Path, *names: str) -> None:
    """Make the manifest agree with the files ``names`` as they are now (hashes consistent)."""
    manifest = json.loads((release / "manifest.json").read_text())
    for name in names:
        body = (release / name).read_bytes()
        manifest["artifacts"][name] = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _other_key(tmp_path: Path) -> Path:
    return signing.ensure_signing_key(tmp_path / "other-keys" / "other.pem")


def flipped_byte(results: Path, tmp_path: Path, evaluated_runs) -> str:
    pkl = current_release(results) / "model.pkl"
    body = bytearray(pkl.read_bytes())
    body[len(body) // 2] ^= 0x01
    pkl.write_bytes(bytes(body))
    return r"its files differ from what was signed \(model.pkl changed\)"


def other_model_manifest_rewritten(results: Path, tmp_path: Path, evaluated_runs) -> str:
    side = tmp_path / "side"
    shutil.copytree(evaluated_runs["old"], side / "runs" / "old")
    other = Path(publish(inputs_of(side / "runs" / "old"), side)["release"])
    release = current_release(results)
    for name in ("model.pkl", "model.skops"):
        shutil.copy(other / name, release / name)
    _rewrite_manifest(release, "model.pkl", "model.skops")
    return r"its files differ from what was signed \(manifest.json changed, model.pkl changed, model.skops changed\)"


def extra_file(results: Path, tmp_path: Path, evaluated_runs) -> str:
    (current_release(results) / "notes.txt").write_text("added later\n")
    return r"its files differ from what was signed \(notes.txt added\)"


def current_to_an_unsigned_copy(results: Path, tmp_path: Path, evaluated_runs) -> str:
    release = current_release(results)
    copy = release.parent / (release.name[:-12] + "0" * 12)
    shutil.copytree(release, copy)
    (copy / "release.sig").unlink()
    (results / "current").unlink()
    os.symlink(f"published/{copy.name}", results / "current")
    return r"not signed \(no release.sig\)"


def signed_with_another_key(results: Path, tmp_path: Path, evaluated_runs) -> str:
    release = current_release(results)
    files = {p.name: p.read_bytes() for p in release.iterdir() if p.name != "release.sig"}
    key = _other_key(tmp_path)
    trusted = signing.trusted_keys([signing.public_key_file(key)])
    signature, _ = signing.sign(files, release.name, key, trusted)
    (release / "release.sig").write_bytes(signature)
    return r"not signed by a trusted key \(signed by [0-9a-f]{16}\.\.\.; \[release\] trusted_keys\)"


def planted_pickle(results: Path, tmp_path: Path, evaluated_runs) -> str:
    release = current_release(results)
    for name in ("model.pkl", "model.skops"):
        (release / name).write_bytes(pickle.dumps(_Exploit(tmp_path / "exploit-ran")))
    _rewrite_manifest(release, "model.pkl", "model.skops")
    return r"its files differ from what was signed \(manifest.json changed, model.pkl changed, model.skops changed\)"


TAMPERINGS = [flipped_byte, other_model_manifest_rewritten, extra_file, current_to_an_unsigned_copy,
              signed_with_another_key, planted_pickle]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__ for t in TAMPERINGS])
def test_every_reader_refuses_a_tampered_release_and_changes_nothing(site, tamper, tmp_path, evaluated_runs,
                                                                     small_csv, monkeypatch, capsys):
    results, inbox = site
    why = tamper(results, tmp_path, evaluated_runs)
    name = current_release(results).name
    refusal = rf"^release {name}: {why}; refusing to use it$"
    before = _state(tmp_path)

    with pytest.raises(IntegrityError, match=refusal):
        open_release(results_dir=results)
    with pytest.raises(IntegrityError, match=refusal):  # etl.predict
        predict(small_csv, tmp_path / "scored.csv", results)
    (queued,) = inbox.queued.iterdir()
    with pytest.raises(IntegrityError, match=refusal):  # the scoring DAG's score_batch, etl.score
        process(queued, inbox, results, load_settings().scoring)
    with pytest.raises(IntegrityError, match=refusal):  # the upload
        upload_results(current_release(results), str(tmp_path / "uploads"), "k")
    with pytest.raises(IntegrityError, match=refusal):  # the outcomes loop's release records
        promises(results, [name])
    status = signature_status(ResultsPaths(results).release(name))  # the Model page
    assert status["verified"] is False and status["problem"].startswith(f"release {name}: ")
    env = {"RESULTS_DIR": str(results), "SCORING_INBOX": str(inbox.root)}
    for module, args in (("etl.predict", ["--input", str(small_csv), "--output", str(tmp_path / "p.csv")]),
                         ("etl.score", []), ("etl.releases.reader", [])):
        status, out, err = run_main(module, *args, env=env, monkeypatch=monkeypatch, capsys=capsys)
        assert status == 1 and out == "", module
        assert len(err.strip().splitlines()) == 1 and f"release {name}: " in err, (module, err)

    assert _state(tmp_path) == before  # nothing scored, sent or moved; the batch still waits
    assert [p.name for p in inbox.queued.iterdir()] == ["batch.csv"]
    assert not (tmp_path / "exploit-ran").exists()


def test_a_verified_release_names_its_key_and_every_file(site):
    results, _ = site
    release = read_release(current_release(results))
    manifest = release.manifest
    assert release.signer == manifest["signing"]["key"]
    envelope = json.loads((current_release(results) / "release.sig").read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://in-toto.io/attestation/release/v0.1"
    assert statement["predicate"]["releaseId"] == release.name
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == {
        n: hashlib.sha256(b).hexdigest() for n, b in release.files.items()}
    assert "release.sig" not in release.files and len(release.files) == 7


def test_key_rotation(site, tmp_path, monkeypatch):
    """A release signed with the old key verifies while both keys are trusted, and is refused
    once the old key is removed; new releases are signed with the new key."""
    results, _ = site
    old_public = Path(os.environ["RELEASE_TRUSTED_KEYS"])
    new_key = signing.ensure_signing_key(tmp_path / "rotation" / "new.pem")
    both = signing.trusted_keys([old_public, signing.public_key_file(new_key)])
    new_only = signing.trusted_keys([signing.public_key_file(new_key)])
    old_release = current_release(results)
    assert read_release(old_release, both).signer in both

    settings = load_settings().override("release", "signing_key", str(new_key)).override(
        "release", "trusted_keys", f"{old_public},{signing.public_key_file(new_key)}")
    shutil.copytree(results / "runs" / "new", results / "runs" / "newer")
    publish(inputs_of(results / "runs" / "newer"), results, release_settings=settings.release)
    newer = current_release(results)
    assert read_release(newer, new_only).signer == signing.fingerprint(signing.private_key(new_key).public_key())
    assert read_release(newer, both).signer in new_only

    with pytest.raises(IntegrityError, match=rf"release {old_release.name}: not signed by a trusted key"):
        read_release(old_release, new_only)  # the old key removed: its releases are refused


def test_a_signing_key_that_is_not_trusted_publishes_nothing(site, tmp_path):
    results, _ = site
    before = _state(results)
    settings = load_settings().override("release", "signing_key", str(_other_key(tmp_path)))
    shutil.copytree(results / "runs" / "new", results / "runs" / "newer")
    with pytest.raises(ParameterError, match=r"the release signing key .*other.pem \([0-9a-f]{16}\.\.\.\) is not in "
                                             r"\[release\] trusted_keys: add its public key .*other.pub"):
        publish(inputs_of(results / "runs" / "newer"), results, release_settings=settings.release)
    after = _state(results)
    assert {k: v for k, v in after.items() if not k.startswith("runs/newer")} == before


def test_the_first_publish_on_a_fresh_machine_makes_the_key_and_verifies(site, tmp_path):
    """No key yet (a fresh clone's secrets/): publishing makes it, and its public key, the
    configured trusted one, verifies the release."""
    results, _ = site
    key = tmp_path / "fresh" / "secrets" / "release-signing-key.pem"
    settings = load_settings().override("release", "signing_key", str(key)).override(
        "release", "trusted_keys", str(signing.public_key_file(key)))
    shutil.copytree(results / "runs" / "new", results / "runs" / "newer")
    publish(inputs_of(results / "runs" / "newer"), results, release_settings=settings.release)
    assert key.exists() and read_release(current_release(results), signing.trusted_keys(
        [signing.public_key_file(key)])).signer == signing.fingerprint(signing.private_key(key).public_key())


def test_the_signing_key_is_made_on_first_use_owner_only(tmp_path):
    key = signing.ensure_signing_key(tmp_path / "secrets" / "release-signing-key.pem")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public = signing.public_key_file(key)
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    first = key.read_bytes()
    signing.ensure_signing_key(key)  # kept, never replaced
    assert key.read_bytes() == first and sorted(key.parent.iterdir()) == sorted([key, public])


def test_a_pickle_planted_as_a_candidate_between_two_tasks_never_runs(evaluated_runs, tmp_path, monkeypatch,
                                                                      capsys):
    """Someone who can write the run folder swaps a candidate's model for a pickle and rewrites its
    checksum: select_model copies it (checked against that checksum, never loaded), and the next
    task that loads it, evaluate_model, refuses it in one line: no file under results/ is ever
    unpickled."""
    from etl.orchestration import pipeline
    from etl.storage.layout import RunPaths

    run = RunPaths(tmp_path / "results" / "runs" / "k")
    shutil.copytree(evaluated_runs["new"], run.root)
    training = json.loads(run.training.read_text())
    planted = run.candidate(training["candidate"]).model
    planted.write_bytes(pickle.dumps(_Exploit(tmp_path / "exploit-ran")))
    planted.with_name(planted.name + ".sha256").write_text(
        f"{hashlib.sha256(planted.read_bytes()).hexdigest()}  {planted.name}\n")

    settings = load_settings().override("paths", "results_dir", str(tmp_path / "results"))
    trained = {p.name for p in (run.root / "candidates").iterdir()}
    settings = replace(settings, candidates={n: c for n, c in settings.candidates.items() if n in trained})
    pipeline.run_step("select_model", pipeline.Run.of_folder(settings, run))
    assert run.model.read_bytes() == planted.read_bytes()  # copied as it was, not loaded
    env = {"RESULTS_DIR": str(tmp_path / "results")}
    status, out, err = run_main("etl.evaluate_model", "--run-dir", str(run.root), env=env, monkeypatch=monkeypatch,
                                capsys=capsys)
    assert status == 1 and out == ""
    assert err.strip() == (f"error: {run.model}: not a model file the pipeline can load safely (a skops file): "
                           "BadZipFile; refusing to load it")
    assert not (tmp_path / "exploit-ran").exists()
