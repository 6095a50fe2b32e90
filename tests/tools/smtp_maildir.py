#!/usr/bin/env python3
"""Tiny real SMTP server for tests: delivers every accepted message into
<root>/<recipient>/Maildir/new/ (written to tmp/ first, then rename(2)), i.e.
exactly where a dovecot with `mail_location = maildir:~/Maildir` and
`home=<root>/%u` reads it.

Needs: aiosmtpd (pip install aiosmtpd  -or-  apt-get install python3-aiosmtpd)

  python3 smtp_maildir.py --port 0 --root /tmp/x/mail [--users /tmp/x/users]
                          [--auth] [--fail-file /tmp/x/smtp.fail] [--host 127.0.0.1]

* --port 0 lets the kernel choose; the bound port is printed as the first stdout
  line "READY <port>" (flushed) once the socket is listening, so the test can read
  it instead of racing for a free port.
* --users FILE: dovecot passwd-file ("user:{PLAIN}pass:..."). RCPT TO for users not
  in it gets "550 5.1.1"; without --users any recipient is accepted and its
  Maildir is created on demand.
* --auth: advertise AUTH PLAIN LOGIN over plain TCP (no TLS) and check the
  credentials against --users. AUTH is optional for clients unless
  --require-auth is given.
* Failure injection: while the file given by --fail-file exists, every
  MAIL FROM is answered with its content (default "451 4.3.0 Temporary failure
  (test)"); put e.g. "554 5.7.1 rejected" in it for a permanent error.
  Or just kill the process (connection refused), or use --exit-after N to make
  the server exit (without answering) when the N+1-th message arrives.
* Files are chowned to the owner of the Maildir (or of --root) when running as
  root, so dovecot's mail_uid can also modify/expunge them.
* SIGTERM/SIGINT -> clean exit 0.
"""
import argparse
import asyncio
import itertools
import os
import signal
import socket
import sys
import time
import logging

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd 1.4 itself sets the deprecated Session.login_data after AUTH and
# logs a warning about it on logger "mail.log"; silence just that line.
logging.getLogger("mail.log").addFilter(
    lambda rec: "login_data is deprecated" not in rec.getMessage())

_counter = itertools.count()
_HOST = socket.gethostname().replace("/", "_").replace(":", "_")


def load_users(path):
    users = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            pw = rest.split(":", 1)[0]
            if pw.startswith("{PLAIN}"):
                pw = pw[len("{PLAIN}"):]
            users[name.lower()] = pw
    return users


def ensure_maildir(root, user):
    """Return <root>/<user>/Maildir, creating cur/new/tmp if needed, owned like root."""
    st = os.stat(root)
    home = os.path.join(root, user)
    md = os.path.join(home, "Maildir")
    for d in (home, md, *(os.path.join(md, s) for s in ("cur", "new", "tmp"))):
        if not os.path.isdir(d):
            os.makedirs(d, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(d, st.st_uid, st.st_gid)
    return md


def deliver(root, user, data):
    md = ensure_maildir(root, user)
    st = os.stat(md)
    now = time.time()
    name = "%d.M%dP%dQ%d.%s" % (int(now), int((now % 1) * 1e6), os.getpid(),
                                next(_counter), _HOST)
    tmp = os.path.join(md, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if os.geteuid() == 0:
        os.chown(tmp, st.st_uid, st.st_gid)
    dst = os.path.join(md, "new", name)
    os.rename(tmp, dst)  # atomic: dovecot never sees a half-written file
    return dst


class Handler:
    def __init__(self, args, users):
        self.args = args
        self.users = users
        self.count = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        ff = self.args.fail_file
        if ff and os.path.exists(ff):
            with open(ff, encoding="utf-8") as f:
                msg = f.read().strip()
            return msg or "451 4.3.0 Temporary failure (test)"
        if self.args.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        user = address.lower()
        if "/" in user or user.startswith(".") or not user:
            return "550 5.1.3 Bad recipient address"
        if self.users is not None and user not in self.users:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(user)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.exit_after is not None and self.count >= self.args.exit_after:
            print("exit-after reached, exiting", file=sys.stderr, flush=True)
            os._exit(3)
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        for rcpt in envelope.rcpt_tos:
            hdr = ("Return-Path: <%s>\r\nDelivered-To: %s\r\n"
                   % (envelope.mail_from or "", rcpt)).encode()
            path = deliver(self.args.root, rcpt, hdr + data)
            print("delivered %s -> %s" % (rcpt, path), file=sys.stderr, flush=True)
        self.count += 1
        return "250 2.0.0 OK: queued"


def make_authenticator(users):
    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace").lower()
            pw = auth_data.password.decode("utf-8", "replace")
            if users is not None and users.get(user) == pw:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
    return authenticator


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--root", required=True, help="mail root: <root>/<user>/Maildir")
    p.add_argument("--users", help="dovecot passwd-file; restricts RCPT and backs AUTH")
    p.add_argument("--auth", action="store_true", help="offer AUTH PLAIN/LOGIN without TLS")
    p.add_argument("--require-auth", action="store_true")
    p.add_argument("--fail-file", help="while this file exists, MAIL FROM gets its content as reply")
    p.add_argument("--exit-after", type=int, help="exit(3) when message N+1 reaches DATA")
    args = p.parse_args()
    if args.require_auth:
        args.auth = True
    users = load_users(args.users) if args.users else None
    handler = Handler(args, users)

    def factory():
        kw = dict(hostname="smtp.example.test", enable_SMTPUTF8=True,
                  data_size_limit=50 * 1024 * 1024)
        if args.auth:
            kw.update(authenticator=make_authenticator(users),
                      auth_require_tls=False, auth_required=args.require_auth)
        return SMTP(handler, **kw)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=args.host, port=args.port)
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
