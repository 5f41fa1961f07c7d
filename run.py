#!/usr/bin/env python3
"""Command line of the teleconsultation service: serve, and account administration.

Only argument parsing lives here; the work is done by the packages.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from config import ConfigError, Settings, load_settings
from config.lan import where_to_open, with_lan_addresses
from signaling.audit_actions import AuditAction
from signaling.models import STAFF_ROLES

if TYPE_CHECKING:
    from signaling.accounts.account_links import IssuedLink
    from signaling.keys import Services
    from signaling.models import User


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    storage = settings.storage
    server = settings.server
    if getattr(args, "data_dir", None):
        storage = dataclasses.replace(storage, data_dir=args.data_dir)
    if getattr(args, "host", None):
        server = dataclasses.replace(server, host=args.host)
    if getattr(args, "port", None):
        server = dataclasses.replace(server, port=args.port)
    if getattr(args, "lan_address", None):
        server = dataclasses.replace(server, lan_addresses=tuple(args.lan_address))
    server = with_lan_addresses(server)
    if getattr(args, "tls_cert", None) or getattr(args, "tls_key", None):
        server = dataclasses.replace(
            server, tls_cert_file=args.tls_cert or "", tls_key_file=args.tls_key or ""
        )
    if getattr(args, "self_signed", False):
        from signaling.accounts.selfsigned import ensure_self_signed

        cert, key = ensure_self_signed(
            Path(storage.data_dir) / "tls", (server.host, *server.lan_addresses)
        )
        server = dataclasses.replace(server, tls_cert_file=str(cert), tls_key_file=str(key))
    return dataclasses.replace(settings, storage=storage, server=server).validate()


def _serve(args: argparse.Namespace) -> int:
    from signaling.api.edge import start_edge
    from signaling.app import create_app, issue_setup_link

    settings = _settings(args)
    app = create_app(settings, record_settings=True)
    ssl_context = None
    if settings.server.tls:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.server.tls_cert_file, settings.server.tls_key_file)

    async def main() -> None:
        # Deadlines for slow clients, a connection limit, quiet parser errors: safe with no
        # proxy in front (signaling/api/edge.py).
        runner = await start_edge(app, settings.server, ssl_context)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"Teleconsultation service listening on {settings.server.host}:"
            f"{settings.server.port} (data in {settings.storage.data_path.resolve()}).\n"
            + where_to_open(settings.server, self_signed=args.self_signed),
            flush=True,
        )
        link = None if args.no_setup_link else await issue_setup_link(app)
        if link:
            # Printed on the console only (never logged): it creates the first administrator.
            print(
                "\nNo account exists yet. Open this one-time link within "
                f"{settings.security.setup_link_minutes} minutes to create the first "
                f"administrator:\n\n    {link}\n",
                flush=True,
            )
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0


def _read_password(prompt_twice: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (at least 12 characters): ")
    if prompt_twice and getpass.getpass("Password again: ") != first:
        raise SystemExit("error: the passwords differ")
    return first


def _with_services(args: argparse.Namespace, work: Callable[..., Awaitable[int]]) -> int:
    from signaling.app import create_app
    from signaling.keys import SERVICES

    settings = _settings(args)
    app = create_app(settings)
    services = app[SERVICES]

    async def main() -> int:
        await services.store.open()
        try:
            return await work(services)
        finally:
            await services.store.close()

    return asyncio.run(main())


def _add_user(args: argparse.Namespace) -> int:
    """Prints a one-time enrolment link; with --credentials-stdin (automation), reads the
    password (and optionally a base32 TOTP secret) from standard input instead."""
    from signaling.errors import AppError

    credentials = _read_credentials() if args.credentials_stdin else None

    async def work(services: Services) -> int:
        try:
            if credentials is None:
                issued = await services.account_links.create_account(
                    args.username, args.role, args.display_name or ""
                )
                user = issued.user
            else:
                user = await services.accounts.create_user(
                    args.username, credentials[0], args.role, args.display_name or ""
                )
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        await services.audit.record(
            "user.created", actor="cli", actor_role="admin", target=user.id, role=user.role
        )
        print(f"Created {user.role} {user.username}.")
        if credentials is None:
            await _print_link(services, issued)
            return 0
        return await _print_enrolment(services, user, credentials[1])

    return _with_services(args, work)


def _read_credentials() -> tuple[str, str | None]:
    """The password on the first line of standard input (a prompt on a terminal), and an
    optional base32 TOTP secret on the second: never in argv, which other users can read."""
    password = _read_password(prompt_twice=True)
    secret = sys.stdin.readline().strip().replace(" ", "").upper() if not sys.stdin.isatty() else ""
    return password, secret or None


async def _print_link(services: Services, issued: IssuedLink) -> None:
    from datetime import UTC, datetime

    await services.audit.record(
        "user.link_issued",
        actor="cli",
        actor_role="admin",
        target=issued.user.id,
        purpose=issued.user.account_link.purpose if issued.user.account_link else "",
    )
    until = datetime.fromtimestamp(issued.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        "Give this one-time link to the person, and to nobody else: it opens a page where "
        "they choose their password and set up their authenticator app. It works once, "
        f"until {until}, and is not shown again.\n"
    )
    print(issued.url(services.settings.server.origin))


async def _print_enrolment(services: Services, user: User, secret: str | None) -> int:
    from signaling.accounts import mfa

    if secret is not None:
        if not mfa.is_valid_secret(secret):
            print("error: the TOTP secret is not base32 of at least 128 bits", file=sys.stderr)
            return 1
        user = await services.accounts.set_totp_secret(user, secret)
    enrolment = await services.accounts.start_enrolment(user)
    print(
        "Scan this code with an authenticator app (FreeOTP, Aegis, Google "
        "Authenticator...), or enter the key by hand. Two-factor sign-in becomes "
        "active with the first correct code.\n"
    )
    print(mfa.qr_terminal(enrolment.otpauth_uri))
    print(f"otpauth URI: {enrolment.otpauth_uri}")
    print(f"key: {enrolment.secret}")
    return 0


def _reset_link(args: argparse.Namespace) -> int:

    async def work(services: Services) -> int:
        user = await services.store.get_user_by_username(args.username)
        if user is None:
            print(f"error: no user named {args.username}", file=sys.stderr)
            return 1
        issued = await services.account_links.issue_reset(user)
        print(f"{user.username}'s sessions ended; password and authenticator are void.")
        await _print_link(services, issued)
        return 0

    return _with_services(args, work)


def _user_action(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:

        async def work(services: Services) -> int:
            user = await services.store.get_user_by_username(args.username)
            if user is None:
                print(f"error: no user named {args.username}", file=sys.stderr)
                return 1
            audit_action: AuditAction
            if action == "reset-mfa":
                await services.accounts.reset_mfa(user)
                message = f"{user.username} enrols a new authenticator at next sign-in."
                audit_action = "mfa.reset"
            else:
                disabled = action == "disable-user"
                await services.accounts.set_disabled(user, disabled)
                message = f"{user.username} is {'disabled' if disabled else 'enabled'}."
                audit_action = "user.disabled" if disabled else "user.enabled"
            await services.audit.record(
                audit_action, actor="cli", actor_role="admin", target=user.id
            )
            print(message)
            return 0

        return _with_services(args, work)

    return run


def _audit_verify(args: argparse.Namespace) -> int:
    from signaling.audit.trail import verify_chain

    async def work(services: Services) -> int:
        report = await verify_chain(services.store)
        count = len(report.entries)
        if report.broken is not None:
            position, reason = report.broken
            print(f"audit trail BROKEN at entry {position} of {count}: {reason}")
            return 1
        for anchor in args.anchor or []:
            # An anchor (seq:hash kept outside, e.g. from the log) catches a cut-off tail,
            # which a chain alone cannot show.
            seq_text, _, expected = anchor.partition(":")
            seq = int(seq_text) if seq_text.isdigit() else 0
            if seq < 1 or not report.holds_anchor(seq, expected):
                print(
                    f"audit trail BROKEN: anchor {seq_text} is missing or was rewritten "
                    f"(the trail has {count} entries)"
                )
                return 1
        since = f", kept from checkpoint {report.checkpoint.seq}" if report.checkpoint else ""
        print(
            f"audit trail intact: {count} entries{since}, head {report.head_seq}:{report.head_hash}"
        )
        return 0

    return _with_services(args, work)


def _recording_export(args: argparse.Namespace) -> int:
    import os

    from media.encrypted_recording import RecordingError
    from signaling.recording.recordings import RecordingLibrary

    async def work(services: Services) -> int:
        library = RecordingLibrary(services.store, services.clock, services.settings)
        recording = await services.store.get_recording(args.recording_id)
        if recording is None or recording.status == "deleted":
            print(f"error: no recording {args.recording_id}", file=sys.stderr)
            return 1
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in library.plaintext(recording):
                    out.write(chunk)
        except RecordingError as exc:
            os.unlink(args.out)
            print(f"error: {exc}", file=sys.stderr)
            return 1
        await services.audit.record(
            "recording.exported", actor="cli", actor_role="admin", target=recording.id
        )
        print(f"Recording {recording.id} decrypted into {args.out} (WebM).")
        return 0

    return _with_services(args, work)


def _recording_repair(args: argparse.Namespace) -> int:
    from signaling.recording.recordings import RecordingLibrary
    from signaling.recording.repair import repair_unfinished, unfinished

    async def work(services: Services) -> int:
        library = RecordingLibrary(services.store, services.clock, services.settings)
        candidates = await unfinished(library, args.id)
        repaired = await repair_unfinished(
            library, services.audit, candidates, stale_after=args.stale_after, actor="cli"
        )
        for r in repaired:
            if r.seekable:
                state = f"{r.duration_seconds:.1f} s, seekable"
            elif r.empty:
                state = "empty (no media arrived), marked: not tried again"
            else:
                state = "NOT repaired"
            print(f"{r.id}  {state}")
        print(f"{len(repaired)} recording(s) repaired.")
        return 0 if all(r.seekable or r.empty for r in repaired) else 1

    return _with_services(args, work)


def _recording_list(args: argparse.Namespace) -> int:
    from signaling.api.views import iso

    async def work(services: Services) -> int:
        for r in await services.store.list_recordings():
            if r.status != "deleted":
                print(
                    f"{r.id}  {iso(r.started_at)}  consultation {r.consultation_id}  "
                    f"{r.status}  {r.size_bytes} bytes"
                )
        return 0

    return _with_services(args, work)


def _store_export(args: argparse.Namespace) -> int:
    from signaling.audit.settings_audit import DIGESTS_META
    from signaling.clinic.details import CLINIC_META
    from signaling.consultations.short_invites import LOOKUP_PREFIX
    from signaling.store.transfer import FORMAT, export_lines

    async def work(services: Services) -> int:
        # Recorded first, so that the export carries the record of itself.
        await services.audit.record(
            "store.exported", actor="cli", actor_role="admin", target="store", format=FORMAT
        )
        out = sys.stdout.buffer
        # The short links' codes too: patients' links keep working on the target store; and
        # the clinic's details as an admin saved them.
        lines = export_lines(
            services.store,
            meta_names=(DIGESTS_META, CLINIC_META),
            meta_prefixes=(LOOKUP_PREFIX,),
        )
        async for line in lines:
            out.write(line)
        out.flush()
        return 0

    return _with_services(args, work)


def _store_import(args: argparse.Namespace) -> int:
    from signaling.store.transfer import TransferError, import_lines

    async def work(services: Services) -> int:
        try:
            counts = await import_lines(services.store, sys.stdin.buffer)
        except TransferError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Imported {counts}.")
        return 0

    return _with_services(args, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py", description="Self-hosted teleconsultation service."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML settings file (then TELECONSULT_* variables)")
    common.add_argument(
        "--data-dir", help="directory for the database, keys and recordings (default ./data)"
    )
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", parents=[common], help="run the service (the default)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--tls-cert", help="TLS certificate chain (PEM)")
    serve.add_argument("--tls-key", help="TLS private key (PEM)")
    serve.add_argument(
        "--self-signed",
        action="store_true",
        help="generate and use a self-signed certificate naming this machine's addresses "
        "(trying it on a LAN)",
    )
    serve.add_argument(
        "--lan-address",
        action="append",
        metavar="ADDRESS",
        help="with --host 0.0.0.0 or ::, the address (or name) of this machine other devices "
        "open, used in invite links; repeat for more (default: found at start)",
    )
    serve.add_argument(
        "--no-setup-link",
        action="store_true",
        help="do not print the first-administrator link (e.g. under systemd, "
        "whose journal would keep it); create the admin with add-user instead",
    )
    serve.set_defaults(func=_serve)

    add = sub.add_parser(
        "add-user",
        parents=[common],
        help="create an account: prints a one-time enrolment link for the person",
    )
    add.add_argument("--username", required=True)
    add.add_argument("--role", choices=STAFF_ROLES, required=True)
    add.add_argument("--display-name", help="name shown to patients, e.g. 'Dr Anne Martin'")
    add.add_argument(
        "--credentials-stdin",
        action="store_true",
        help="automation: read the password from the first line of standard input and, "
        "optionally, a base32 TOTP secret from the second (else one is made and printed); "
        "no link",
    )
    add.set_defaults(func=_add_user)
    reset = sub.add_parser(
        "reset-link",
        parents=[common],
        help="end an account's sessions, void its password and authenticator, and print a "
        "one-time link where the person chooses new ones",
    )
    reset.add_argument("--username", required=True)
    reset.set_defaults(func=_reset_link)

    for name, text in (
        ("reset-mfa", "make a user enrol a new authenticator"),
        ("disable-user", "disable an account and end its sessions"),
        ("enable-user", "enable a disabled account"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("--username", required=True)
        cmd.set_defaults(func=_user_action(name))
    recording = sub.add_parser("recording", help="recordings: list, export decrypted, repair")
    recording_sub = recording.add_subparsers(dest="recording_command", required=True)
    export = recording_sub.add_parser(
        "export", parents=[common], help="decrypt a recording into a new WebM file (0600)"
    )
    export.add_argument("recording_id")
    export.add_argument("--out", required=True, help="file to create (must not exist)")
    export.set_defaults(func=_recording_export)
    listing = recording_sub.add_parser("list", parents=[common], help="list recordings")
    listing.set_defaults(func=_recording_list)
    repair = recording_sub.add_parser(
        "repair",
        parents=[common],
        help="give unfinished recordings (a crash, a killed recorder) their duration and cues, "
        "up to their last complete segment",
    )
    repair.add_argument("--id", help="only this recording")
    repair.add_argument(
        "--stale-after",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="repair a recording still marked as recording only when its file has not "
        "changed for this long (another instance may be writing it; default 120)",
    )
    repair.set_defaults(func=_recording_repair)

    store = sub.add_parser(
        "store", help="move the records between stores: export | import (e.g. SQLite to PostgreSQL)"
    )
    store_sub = store.add_subparsers(dest="store_command", required=True)
    store_export = store_sub.add_parser(
        "export",
        parents=[common],
        help="write the durable records as JSON lines on stdout (pipe it into import; "
        "it holds patients' details: never keep it in a file)",
    )
    store_export.set_defaults(func=_store_export)
    store_import = store_sub.add_parser(
        "import", parents=[common], help="read an export on stdin into an empty store"
    )
    store_import.set_defaults(func=_store_import)

    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", parents=[common], help="walk the hash chain; exit 1 at the first tampered entry"
    )
    verify.add_argument(
        "--anchor",
        action="append",
        metavar="SEQ:HASH",
        help="an anchor printed earlier (log line 'audit anchor' or a previous "
        "verify); fails if the trail no longer holds it (a truncated tail)",
    )
    verify.set_defaults(func=_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
