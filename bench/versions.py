"""Versions of everything the figures depend on."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import redis.asyncio as aioredis

from streams.settings import Settings

PACKAGES = (
    "tokenboard",
    "faust-streaming",
    "mode-streaming",
    "aiokafka",
    "quixstreams",
    "confluent-kafka",
    "rocksdict",
    "orjson",
    "redis",
    "hiredis",
    "py-spy",
)


def package_versions() -> dict[str, str]:
    """Installed version of each package that matters ("not installed" otherwise)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


async def server_versions(settings: Settings) -> dict[str, str]:
    """Redis server version (from INFO) and the Kafka version the local stack runs."""
    out = {"kafka broker": f"{settings.kafka_version} (local stack setting)"}
    client = aioredis.from_url(settings.redis_url)
    try:
        info = await client.info("server")
        out["redis server"] = str(info.get("redis_version", "unknown"))
    finally:
        await client.aclose()
    return out


def code_fingerprint(root: Path) -> str:
    """``<git HEAD>[+dirty] code <sha>``: the commit and a hash of the measured code.

    The hash covers ``streams/`` and ``aggregations/`` as they are on disk, so a change in
    a shared work tree while the benchmark runs shows up as two different fingerprints.
    """
    digest = hashlib.sha256()
    for path in sorted([*root.glob("streams/**/*.py"), *root.glob("aggregations/**/*.py")]):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "streams", "aggregations"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        head, dirty = "", ""
    return f"{head or 'no git'}{'+dirty' if dirty else ''} code {digest.hexdigest()[:12]}"
