"""A minimal SMTP server on 127.0.0.1 for tests: speaks the RFC 5321 commands smtplib uses (EHLO/HELO,
MAIL, RCPT, DATA, RSET, NOOP, QUIT), accepts every message and keeps what arrived on the wire.

It advertises no extension (no 8BITMIME, no SMTPUTF8): a message that needs more than plain 7-bit
SMTP cannot pass through it unchanged. Used as a context manager: `with SmtpSink() as sink:`
then `smtplib.SMTP(sink.host, sink.port)`; `sink.messages` holds (envelope from, envelope
recipients, data bytes with the dot-stuffing undone).
"""

from __future__ import annotations

import socketserver
import threading


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]

        def reply(line: str) -> None:
            self.wfile.write(line.encode("ascii") + b"\r\n")
            self.wfile.flush()

        reply("220 sink.test ESMTP ready")
        sender, recipients = None, []
        while raw := self.rfile.readline(4096):
            command = raw.decode("ascii").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250 sink.test")
            elif verb == "MAIL":
                sender, recipients = command[10:].strip(), []
                reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command[8:].strip())
                reply("250 OK")
            elif verb == "DATA":
                if sender is None or not recipients:
                    reply("503 need MAIL and RCPT first")
                    continue
                reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (line := self.rfile.readline()) != b".\r\n":
                    if not line:
                        return
                    lines.append(line[1:] if line.startswith(b".") else line)
                sink.messages.append((sender, recipients, b"".join(lines)))
                sender, recipients = None, []
                reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                sender, recipients = (None, []) if verb == "RSET" else (sender, recipients)
                reply("250 OK")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("502 command not implemented")


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.sink = self  # type: ignore[attr-defined]
        self.host, self.port = self._server.server_address[:2]

    def __enter__(self) -> SmtpSink:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
