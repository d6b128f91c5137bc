"""The ``vigil`` command: up, run, agent, rebuild, check-config, config, secrets, asyncapi,
deadletters.

Each command imports what it needs when it runs: the host agent must stay under
40 MB resident, and the YAML config, the web stack and uvloop are not its business.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from shared.logs import configure_logging
from shared.openfiles import raise_file_limit
from shared.services import SERVICES


def _run(coro: Any) -> Any:
    """uvloop where installed: it cuts per-message latency on the hot paths."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def _check_config(path: Path | None) -> bool:
    from shared.config import ConfigError, load_config

    try:
        load_config(path)
    except ConfigError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return False
    return True


def _fail(message: str) -> int:
    print(f"vigil: {message}", file=sys.stderr)
    return 2


def _tls_pair(cert: Path | None, key: Path | None) -> tuple[Path, Path] | str | None:
    """The certificate and key as absolute paths, checked to load; or why not."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        return "--tls-cert and --tls-key go together: give both"
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        return f"--tls-cert {cert} --tls-key {key}: cannot be loaded ({exc})"
    return cert.resolve(), key.resolve()


def cmd_up(args: argparse.Namespace) -> int:
    from services.supervisor import Supervisor, UpOptions
    from shared.datadir import DataDirError, DataDirLock, prepare
    from shared.settings import Settings

    raise_file_limit()
    if not _check_config(args.config):
        return 2
    settings = Settings()  # VIGIL_TLS_CERT / VIGIL_TLS_KEY stand in for the options
    tls = _tls_pair(args.tls_cert or settings.tls_cert, args.tls_key or settings.tls_key)
    if isinstance(tls, str):
        return _fail(tls)
    scheme = "https" if tls else "http"
    try:
        prepare(args.data_dir)
        lock = DataDirLock(args.data_dir.resolve()).acquire(
            f"vigil up, {scheme}://{args.host}:{args.port}/"
        )
    except DataDirError as exc:
        return _fail(str(exc))
    options = UpOptions(
        port=args.port,
        host=args.host,
        data_dir=args.data_dir,
        config=args.config,
        sync_always=args.sync_always,
        agent=not args.no_agent,
        agent_interval_s=args.agent_interval,
        nats_url=settings.nats_url,
        tls_cert=tls[0] if tls else None,
        tls_key=tls[1] if tls else None,
    )
    configure_logging("WARNING")
    with lock:
        return int(_run(Supervisor(options).run()))


def cmd_run(args: argparse.Namespace) -> int:
    from shared.datadir import DataDirError, ensure_writable
    from shared.settings import Settings

    raise_file_limit()
    os.umask(0o077)
    settings = Settings()
    configure_logging(settings.log_level)
    if not settings.nats_url:
        print("vigil run needs NATS_URL (vigil up starts an embedded server)", file=sys.stderr)
        return 2
    if not _check_config(settings.config):
        return 2
    if settings.database_url is None:  # SQLite files in the data dir
        try:
            ensure_writable(settings.data_dir)
        except DataDirError as exc:
            return _fail(str(exc))
    app = importlib.import_module(f"services.{args.service}.app")
    runtime = app.build(settings)
    _run(runtime.run_until_signalled())
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from shared.settings import Settings

    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    configure_logging(settings.log_level)
    app = importlib.import_module(f"services.{args.service}.app")
    rebuild = getattr(app, "rebuild", None)
    if rebuild is None:
        print(f"{args.service} keeps no read model; its state is replayed from the log at start")
        return 0
    embedded = None
    lock = None
    if not settings.nats_url:
        # the system is stopped (as a rebuild requires): open its log from the data dir
        from shared.datadir import DataDirError, DataDirLock
        from shared.natsserver import EmbeddedNats

        try:
            lock = DataDirLock(settings.data_dir.resolve()).acquire(f"vigil rebuild {args.service}")
        except DataDirError as exc:
            return _fail(f"{exc}; stop it first")
        from shared.natsauth import embedded_authorization

        authorization = embedded_authorization(settings.data_dir, create=False)
        embedded = EmbeddedNats(settings.data_dir / "nats", authorization=authorization).start()
        settings = settings.model_copy(update={"nats_url": embedded.url})
    try:
        _run(rebuild(settings))
    finally:
        if embedded is not None:
            embedded.stop()
        if lock is not None:
            lock.release()
    print(f"vigil {args.service} read model rebuilt from the log")
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    # the environment read by hand: Settings would bring pydantic, doubling the agent's memory
    env = os.environ
    configure_logging(env.get("VIGIL_LOG_LEVEL", "INFO"))
    from services.metrics.agent import run_agent

    env_nats = env.get("NATS_URL") or env.get("VIGIL_NATS_URL")
    nats_url = args.nats_url or (None if args.gateway else env_nats)
    port = env.get("VIGIL_PORT", "8080")
    gateway = args.gateway or (None if nats_url else f"http://127.0.0.1:{port}")
    # a gateway serving HTTPS with its own certificate (vigil up --tls-cert) is trusted by it
    gateway_ca = args.gateway_ca or env.get("VIGIL_TLS_CERT")
    secure = gateway is not None and gateway.startswith("https://")
    print(f"vigil agent ready (every {args.interval}s to {nats_url or gateway})", flush=True)
    # plain asyncio: uvloop would cost the agent a megabyte for one request per interval
    asyncio.run(
        run_agent(
            args.interval,
            nats_url=nats_url,
            gateway_url=gateway,
            once=args.once,
            gateway_ca=gateway_ca if secure else None,
        )
    )
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    if not _check_config(args.file):
        return 2
    print(f"{args.file}: ok")
    return 0


def cmd_config_export(args: argparse.Namespace) -> int:
    from services.config_cli import cmd_config_export as export

    return export(args)


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    from services.config_cli import cmd_secrets_rotate as rotate

    return rotate(args)


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from shared.asyncapi import write_asyncapi

    write_asyncapi(args.output)
    print(f"wrote {args.output}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="vigil", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start NATS (embedded unless NATS_URL) and every service")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--data-dir", type=Path, default=Path(".vigil"))
    up.add_argument("--config", type=Path, default=None)
    up.add_argument("--sync-always", action="store_true", help="fsync every JetStream write")
    up.add_argument("--no-agent", action="store_true", help="do not collect this host's metrics")
    up.add_argument("--agent-interval", type=float, default=10.0)
    up.add_argument("--tls-cert", type=Path, default=None, help="serve HTTPS: PEM certificate")
    up.add_argument("--tls-key", type=Path, default=None, help="serve HTTPS: PEM private key")
    up.set_defaults(func=cmd_up)

    run = sub.add_parser("run", help="run one service (needs NATS_URL)")
    run.add_argument("service", choices=SERVICES)
    run.set_defaults(func=cmd_run)

    rebuild = sub.add_parser("rebuild", help="rebuild a service's read model from the log")
    rebuild.add_argument("service", choices=SERVICES)
    rebuild.add_argument(
        "--data-dir", type=Path, default=None, help="data dir of a stopped `vigil up` system"
    )
    rebuild.set_defaults(func=cmd_rebuild)

    agent = sub.add_parser("agent", help="collect this host's metrics and publish them")
    agent.add_argument("--interval", type=float, default=10.0)
    agent.add_argument("--gateway", default=None, help="gateway URL to POST samples to")
    agent.add_argument("--nats-url", default=None, help="publish straight to NATS instead")
    agent.add_argument(
        "--gateway-ca",
        default=None,
        help="PEM certificate the HTTPS gateway must present (default: $VIGIL_TLS_CERT)",
    )
    agent.add_argument("--once", action="store_true")
    agent.set_defaults(func=cmd_agent)

    check = sub.add_parser("check-config", help="validate a vigil.yaml")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_config)

    from services.identity_cli import add_commands as add_identity_commands

    add_identity_commands(sub)

    config = sub.add_parser("config", help="the configuration in use")
    export = config.add_subparsers(dest="config_command", required=True).add_parser(
        "export", help="write the rules, channels and checks in use (API items too) as YAML"
    )
    export.add_argument("--data-dir", type=Path, default=None, help="of a stopped system")
    export.add_argument("--config", type=Path, default=None, help="carry its other sections")
    export.add_argument("--output", "-o", type=Path, default=None, help="default: stdout")
    export.set_defaults(func=cmd_config_export)

    secrets = sub.add_parser("secrets", help="the key that encrypts secrets at rest")
    rotate = secrets.add_subparsers(dest="secrets_command", required=True).add_parser(
        "rotate", help="add a new key and encrypt every channel secret with it"
    )
    rotate.add_argument("--data-dir", type=Path, default=None, help="of a stopped system")
    rotate.add_argument("--retire", action="store_true", help="then keep only the newest key")
    rotate.set_defaults(func=cmd_secrets_rotate)

    spec = sub.add_parser("asyncapi", help="write the AsyncAPI document of every event")
    spec.add_argument("--output", type=Path, default=Path("docs/asyncapi.json"))
    spec.set_defaults(func=cmd_asyncapi)
    from services.natsauth_cli import register as register_nats

    register_nats(sub)
    from services.deadletters_cli import register as register_dead_letters

    register_dead_letters(sub)
    from services.rules_cli import register as register_rules

    register_rules(sub)
    from services.silence_cli import register as register_silence

    register_silence(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
