"""A local stand-in for Google's Drive v2 API and OAuth token endpoint, on 127.0.0.1.

pydrive2 and Google's API client run unchanged; only the host of their HTTP requests is
rewritten (``rewriting_http``) from ``https://www.googleapis.com`` and
``https://oauth2.googleapis.com`` to this server. It keeps files in memory and implements
what uploads use: ``files.get``, ``files.list`` (the query forms pydrive2 users write),
``files.insert`` and ``files.update`` with resumable media uploads, and the token endpoint
(JWT bearer grants signed with the registered service-account key, refresh-token grants).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httplib2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FOLDER_MIME = "application/vnd.google-apps.folder"
GOOGLE_HOSTS = ("https://www.googleapis.com", "https://oauth2.googleapis.com")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_json(key: rsa.RSAPrivateKey, token_uri: str, email: str = "uploader@proj.iam.gserviceaccount.com") -> dict:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "proj", "private_key_id": "k1", "private_key": pem,
            "client_email": email, "client_id": "1", "token_uri": token_uri}


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class FakeDrive:
    """State of the fake: files by id, the accepted key and refresh token, request log."""

    public_key: Any = None
    refresh_token: str = "1//saved-refresh-token"
    files: dict[str, dict] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    port: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _sessions: dict[str, dict] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, title: str, mime_type: str = FOLDER_MIME, parent: str | None = None, content: bytes = b"") -> str:
        file_id = f"id{next(self._ids)}"
        self.files[file_id] = {
            "id": file_id, "title": title, "mimeType": mime_type, "kind": "drive#file",
            "parents": [{"id": parent}] if parent else [], "labels": {"trashed": False},
        }
        if mime_type != FOLDER_MIME:
            self._set_content(file_id, content)
        return file_id

    def _set_content(self, file_id: str, content: bytes) -> None:
        self.files[file_id].update(content=content, fileSize=str(len(content)),
                                   md5Checksum=hashlib.md5(content).hexdigest())

    def children(self, parent: str) -> dict[str, dict]:
        return {f["title"]: f for f in self.files.values() if {"id": parent} in f["parents"]}

    def public(self, file_id: str) -> dict:
        return {k: v for k, v in self.files[file_id].items() if k != "content"}

    # -- token endpoint ------------------------------------------------------------------------
    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") != self.refresh_token:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        else:
            header, payload, signature = form.get("assertion", "..").split(".")
            try:
                self.public_key.verify(_b64(signature), f"{header}.{payload}".encode(),
                                       padding.PKCS1v15(), hashes.SHA256())
            except Exception:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        token = f"ya29.fake-{len(self.tokens)}"
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    # -- files ---------------------------------------------------------------------------------
    def list(self, q: str) -> dict:
        parent = re.search(r"'([^']+)' in parents", q)
        title = re.search(r"title = '((?:[^'\\]|\\.)*)'", q)
        mime = re.search(r"mimeType = '([^']+)'", q)
        items = [self.public(i) for i, f in self.files.items()
                 if (not parent or {"id": parent.group(1)} in f["parents"])
                 and (not title or f["title"] == re.sub(r"\\(.)", r"\1", title.group(1)))
                 and (not mime or f["mimeType"] == mime.group(1))
                 and not f["labels"]["trashed"]]
        return {"kind": "drive#fileList", "items": items}

    def insert(self, meta: dict, content: bytes | None) -> dict:
        for parent in meta.get("parents", []):
            if parent["id"] not in self.files:
                raise KeyError(parent["id"])
        file_id = self.add(meta["title"], meta.get("mimeType", "application/octet-stream"),
                           (meta.get("parents") or [{}])[0].get("id"), content or b"")
        return self.public(file_id)

    def update(self, file_id: str, meta: dict, content: bytes | None) -> dict:
        self.files[file_id].update({k: v for k, v in meta.items() if k in ("title", "mimeType")})
        if content is not None:
            self._set_content(file_id, content)
        return self.public(file_id)


def _not_found(file_id: str) -> tuple[int, dict]:
    return 404, {"error": {"code": 404, "message": f"File not found: {file_id}",
                           "errors": [{"domain": "global", "reason": "notFound", "message": f"File not found: {file_id}"}]}}


def serve(drive: FakeDrive) -> ThreadingHTTPServer:
    """Start serving ``drive`` on a free port of 127.0.0.1 (in a thread); sets ``drive.port``."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _handle(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            body = self._body()
            drive.requests.append((self.command, url.path))
            if url.path == "/token":
                return self._reply(*drive.token({k: v[0] for k, v in parse_qs(body.decode()).items()}))
            auth = self.headers.get("Authorization", "")
            if auth.removeprefix("Bearer ") not in drive.tokens:
                return self._reply(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
            m = re.fullmatch(r"/(upload/)?drive/v2/files(?:/([^/]+))?", url.path)
            if not m:
                return self._reply(404, {"error": {"code": 404, "message": "no such endpoint"}})
            upload, file_id = m.groups()
            if file_id and file_id not in drive.files:
                return self._reply(*_not_found(file_id))
            if "upload_id" in query:  # the content of a resumable upload
                session = drive._sessions.pop(query["upload_id"])
                if session["file_id"]:
                    return self._reply(200, drive.update(session["file_id"], session["meta"], body))
                try:
                    return self._reply(200, drive.insert(session["meta"], body))
                except KeyError as exc:
                    return self._reply(*_not_found(exc.args[0]))
            if upload:  # start a resumable upload: remember the metadata, give a session URL
                upload_id = str(len(drive._sessions) + len(drive.files))
                drive._sessions[upload_id] = {"file_id": file_id, "meta": json.loads(body or b"{}")}
                return self._reply(200, {}, {"Location": f"{drive.url}{url.path}?uploadType=resumable&upload_id={upload_id}"})
            if self.command == "GET" and file_id:
                return self._reply(200, drive.public(file_id))
            if self.command == "GET":
                return self._reply(200, drive.list(query.get("q", "")))
            if self.command == "POST":
                try:
                    return self._reply(200, drive.insert(json.loads(body), None))
                except KeyError as exc:
                    return self._reply(*_not_found(exc.args[0]))
            if self.command in ("PUT", "PATCH"):
                return self._reply(200, drive.update(file_id, json.loads(body or b"{}"), None))
            return self._reply(405, {"error": {"code": 405, "message": "method not allowed"}})

        do_GET = do_POST = do_PUT = do_PATCH = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    drive.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def rewriting_http(drive: FakeDrive):
    """An ``httplib2.Http`` factory sending Google's API and token requests to ``drive``."""

    class RewritingHttp(httplib2.Http):
        def request(self, uri, *args, **kwargs):
            for host in GOOGLE_HOSTS:
                if uri.startswith(host):
                    uri = drive.url + uri[len(host):]
            return super().request(uri, *args, **kwargs)

    def factory() -> httplib2.Http:
        http = RewritingHttp(timeout=10)
        http.redirect_codes = http.redirect_codes - {308}  # as pydrive2 does: resumable uploads
        return http

    return factory
