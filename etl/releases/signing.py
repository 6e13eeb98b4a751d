"""Release signatures: every file of a release listed with its SHA-256 in an in-toto Statement,
signed with the release key in a DSSE envelope (``release.sig``), and verified against the public
keys the configuration trusts before anything of a release is used.

The format is two published standards, each through its reference implementation: the in-toto
attestation framework's Statement v1 (``in-toto-attestation``) with its Release predicate
(``https://in-toto.io/attestation/release/v0.1``: the release's name), and the Dead Simple
Signing Envelope (DSSE) around it, made and checked by ``securesystemslib`` (the library TUF and
in-toto sign with) with an ECDSA P-256 key. (The OpenSSF model signing package, which signs the
same kind of statement, imports pyOpenSSL, whose current versions break the Google Drive
upload's OAuth library: README, "Dependencies".)

Verification is strict: the envelope must be signed by a trusted key, the statement must name
this release, and the folder must hold exactly the files it lists (no file missing, changed or
added). Keys: ``[release] signing_key`` (private; made on first use in ``secrets/``, owner-only,
with its public key beside it) and ``[release] trusted_keys`` (public keys, a list: to rotate,
add the new key's, sign with it, and remove the old one when its releases may be refused).
A key's fingerprint is the SHA-256 of its DER-encoded public key (``openssl pkey -pubin -outform
DER | sha256sum``), in hex.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.catalog import IntegrityError, ParameterError, first_line

if TYPE_CHECKING:
    from securesystemslib.signer import Key

logger = logging.getLogger(__name__)

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/release/v0.1"
PURL = "pkg:generic/breast-cancer-diagnosis-model"
#: What ``release.sig`` is, in the manifest.
FORMAT = "DSSE envelope (ECDSA P-256) of an in-toto Statement v1, predicate " + PREDICATE_TYPE


def fingerprint(public_key: Any) -> str:
    """The fingerprint of a ``cryptography`` public key: SHA-256 of its DER SubjectPublicKeyInfo, hex."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_key_file(private_key: Path) -> Path:
    """Where the public key of ``private_key`` is written beside it (``<name>.pub``)."""
    return private_key.with_suffix(".pub")


def ensure_signing_key(path: Path) -> Path:
    """Make an ECDSA P-256 key at ``path`` (PKCS#8 PEM, owner-only) and its public key beside it,
    unless it exists. Two processes making it at once agree on one (the file appears whole, once)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)  # fails if another process made it first: theirs is kept
            logger.info("made the release signing key %s (owner-only; its public key: %s)",
                        path, public_key_file(path))
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    public = public_key_file(path)
    if not public.exists():
        key = private_key(path)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ParameterError(f"release signing key {path}: cannot be read as a PEM private key "
                             f"({type(exc).__name__})") from None


def trusted_keys(paths: Iterable[Path]) -> dict[str, Key]:
    """The public keys releases may be signed with, by fingerprint (PEM files; a missing file is
    skipped with a warning: no release it signed verifies)."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import SSlibKey

    keys: dict[str, Key] = {}
    for path in paths:
        try:
            public = serialization.load_pem_public_key(Path(path).read_bytes())
        except FileNotFoundError:
            logger.warning("trusted release key %s does not exist", path)
            continue
        except ValueError:
            raise ParameterError(f"trusted release key {path} is not a PEM public key") from None
        keys[fingerprint(public)] = SSlibKey.from_crypto(public, keyid=fingerprint(public))
    return keys


def statement(files: Mapping[str, bytes], release: str) -> bytes:
    """The in-toto Statement listing every file (name, SHA-256) of release ``release``."""
    from google.protobuf import json_format
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    subjects = [ResourceDescriptor(name=name, digest={"sha256": hashlib.sha256(body).hexdigest()}).pb
                for name, body in sorted(files.items())]
    made = Statement(subjects, PREDICATE_TYPE, {"purl": f"{PURL}@{release}", "releaseId": release})
    made.validate()
    return json_format.MessageToJson(made.pb, sort_keys=True, indent=None).encode()


def sign(files: Mapping[str, bytes], release: str, key_file: Path, trusted: Mapping[str, Key]) -> tuple[bytes, str]:
    """Sign ``files`` (every file of the release but the signature) with the private key in
    ``key_file`` (made if missing).

    Returns:
        the signature file's bytes (the DSSE envelope, JSON) and the key's fingerprint.

    Raises:
        ParameterError: the key is not among the trusted keys (nothing could verify the release).
    """
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey

    key = private_key(ensure_signing_key(key_file))
    signer_id = fingerprint(key.public_key())
    if signer_id not in trusted:
        raise ParameterError(
            f"the release signing key {key_file} ({signer_id[:16]}...) is not in [release] trusted_keys: "
            f"add its public key {public_key_file(key_file)}, or sign with a trusted key")
    envelope = Envelope(payload=statement(files, release), payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(CryptoSigner(key, SSlibKey.from_crypto(key.public_key(), keyid=signer_id)))
    return json.dumps(envelope.to_dict(), sort_keys=True, indent=1).encode() + b"\n", signer_id


def verify(files: Mapping[str, bytes], signature: bytes | None, release: str, trusted: Mapping[str, Key]) -> str:
    """Check that ``signature`` signs exactly ``files`` (every other file of the folder) as
    release ``release``, with one of the ``trusted`` keys.

    Returns:
        the fingerprint of the key that signed it.

    Raises:
        IntegrityError: one line naming the release and what failed.
    """
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    def refuse(why: str) -> IntegrityError:
        return IntegrityError(f"release {release}: {why}; refusing to use it")

    if signature is None:
        raise refuse("not signed (no release.sig)")
    if not trusted:
        raise refuse("no trusted key to verify it with ([release] trusted_keys)")
    try:
        envelope = Envelope.from_dict(json.loads(signature))
    except (ValueError, KeyError, TypeError) as exc:
        raise refuse(f"its signature cannot be read ({first_line(exc)})") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise refuse(f"its signature is not of an in-toto statement ({envelope.payload_type})")
    signers = sorted(s.keyid for s in envelope.signatures.values())
    try:
        accepted = envelope.verify(list(trusted.values()), 1)
    except VerificationError:
        raise refuse(f"not signed by a trusted key (signed by {', '.join(k[:16] + '...' for k in signers) or 'nobody'}; "
                     "[release] trusted_keys)") from None
    try:
        body = json.loads(envelope.payload)
        listed = {s["name"]: s["digest"]["sha256"] for s in body["subject"]}
        named = body["predicate"]["releaseId"]
    except (ValueError, KeyError, TypeError):
        raise refuse("its signed statement cannot be read") from None
    if body.get("_type") != STATEMENT_TYPE or body.get("predicateType") != PREDICATE_TYPE:
        raise refuse("its signed statement is not a release statement")
    if named != release:
        raise refuse(f"the signature is of release {named}")
    problems = [f"{name} added" for name in sorted(set(files) - set(listed))]
    problems += [f"{name} missing" for name in sorted(set(listed) - set(files))]
    problems += [f"{name} changed" for name in sorted(set(files) & set(listed))
                 if hashlib.sha256(files[name]).hexdigest() != listed[name]]
    if problems:
        raise refuse(f"its files differ from what was signed ({', '.join(problems)})")
    return next(iter(accepted))


def signer_of(signature: bytes) -> str | None:
    """The fingerprint a signature names as its key (unverified: for display only)."""
    try:
        return json.loads(signature)["signatures"][0]["keyid"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None

