"""Replication to S3-compatible storage (moto's S3 server, run locally), configured with a
full STEMEDB_LITESTREAM_CONFIG: the storage holds the primary's journal frame for frame,
and a read replica follows it."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from stemedb.replication import litestream
from tests.e2ekit import Agent, ServerFactory, poll, unique
from tests.replication.replkit import Writer, free_addr, journal, metric

KEYS = {"access-key-id": "testing", "secret-access-key": "testing"}


@pytest.fixture
def s3() -> Iterator[str]:
    """moto's S3 server on a free port, with a bucket `stemedb`: its endpoint."""
    host, port = free_addr().split(":")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", host, "-p", port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://{host}:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            return True
        except OSError as exc:
            return getattr(exc, "code", None) is not None  # an HTTP error is an answer

    try:
        poll(up, timeout=30, interval=0.1)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="stemedb")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def _replica_block(endpoint: str) -> str:
    return (
        "      - type: s3\n"
        "        bucket: stemedb\n"
        "        path: primary\n"
        f"        endpoint: {endpoint}\n"
        "        region: us-east-1\n"
        "        force-path-style: true\n"
        "        sync-interval: 100ms\n" + "".join(f"        {k}: {v}\n" for k, v in KEYS.items())
    )


def test_s3_replication_and_restore(s3: str, server_factory: ServerFactory, tmp_path: Path) -> None:
    base = tmp_path / "primary"
    base.mkdir()
    db = base / "db" / "stemedb.db"
    addr = free_addr()
    config = tmp_path / "litestream.yml"
    config.write_text(
        f'addr: "{addr}"\ndbs:\n  - path: "{db}"\n    monitor-interval: 100ms\n'
        f"    replicas:\n{_replica_block(s3)}"
    )
    # Litestream 0.5.17's S3 client fails on a custom CA bundle ("unable to add custom
    # RootCAs"): this machine's AWS_CA_BUNDLE would stop it (replication.md says so)
    env = {"STEMEDB_LITESTREAM_CONFIG": str(config), "AWS_CA_BUNDLE": ""}
    server = server_factory(env, base=base)
    api = server.api
    poll(lambda: metric(api, "stemedb_replication_up") == 1.0, timeout=20)
    writer = Writer(api)
    writer.start()
    poll(lambda: len(writer.acked) >= 500, timeout=60, interval=0.1)
    writer.stop()
    written = api.write("/v1/assert", Agent().assertion(f"s3/{unique()}", "p", 1))

    restore_cfg = tmp_path / "restore.yml"
    restore_cfg.write_text(f'dbs:\n  - path: "{db}"\n    replicas:\n{_replica_block(s3)}')
    out = tmp_path / "restored.db"

    def restored() -> bool:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{out}{suffix}").unlink(missing_ok=True)
        cmd = [str(litestream.binary()), "restore", "-config", str(restore_cfg), "-o", str(out)]
        done = subprocess.run(
            [*cmd, str(db)],
            capture_output=True,
            timeout=60,
            env={**os.environ, "AWS_CA_BUNDLE": ""},
        )
        return done.returncode == 0 and journal(out) == journal(db)

    poll(restored, timeout=30, interval=0.2)
    assert journal(out)[-1][0] == written["seq"]
    assert metric(api, "stemedb_replication_errors_total") == 0.0
