# syntax=docker/dockerfile:1
#
# tokenboard: one image for every process (worker, ingest, api, simulate, topics).
#
#   docker build -t tokenboard:latest .
#   docker run --rm tokenboard:latest --help
#
# The process is chosen by the command: `tokenboard worker` (default), `tokenboard ingest`,
# `tokenboard api`, `tokenboard simulate ...`, `tokenboard topics create`.
# Every setting is an environment variable TOKENBOARD_<FIELD> (see streams/settings.py).

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: wheels for the project and every dependency -----------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel needs (pyproject's readme is README.md); .dockerignore keeps the rest out.
COPY pyproject.toml README.md ./
COPY aggregations ./aggregations
COPY streams ./streams
RUN pip wheel --wheel-dir /wheels .

# --- runtime: wheels installed offline, non-root, no build tools ----------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 tokenboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/tokenboard --shell /usr/sbin/nologin tokenboard \
 && mkdir -p /var/lib/tokenboard \
 && chown 10001:10001 /var/lib/tokenboard

# The wheels are bind-mounted from the builder (BuildKit), so no layer keeps a copy of them.
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    pip install --no-index --find-links=/tmp/wheels tokenboard

# Health check for whichever server runs in this container: the worker (6066), the read API
# (8080) or the ingest gateway (8081), each overridable by its TOKENBOARD_* port variable.
# The slim image has no curl, so it is a few lines of Python (urllib) written at build time.
RUN printf '%s\n' \
      '#!/usr/local/bin/python' \
      '"""Exit 0 if a tokenboard HTTP server in this container answers GET /healthz."""' \
      'import os' \
      'import sys' \
      'import urllib.request' \
      '' \
      'PORTS = {' \
      '    "TOKENBOARD_WORKER_WEB_PORT": "6066",' \
      '    "TOKENBOARD_API_PORT": "8080",' \
      '    "TOKENBOARD_INGEST_PORT": "8081",' \
      '}' \
      'for variable, default in PORTS.items():' \
      '    url = f"http://127.0.0.1:{os.environ.get(variable) or default}/healthz"' \
      '    try:' \
      '        with urllib.request.urlopen(url, timeout=3) as response:' \
      '            if response.status == 200:' \
      '                sys.exit(0)' \
      '    except OSError:' \
      '        pass' \
      'sys.exit(1)' \
      > /usr/local/bin/tokenboard-healthcheck \
 && chmod 0755 /usr/local/bin/tokenboard-healthcheck

# Faust creates its data directory ("<app id>-data") in the working directory: keep that
# writable for the non-root user (Kubernetes mounts an emptyDir here).
WORKDIR /var/lib/tokenboard
USER 10001:10001

# worker web (healthz/readyz/metrics), read API + dashboard, ingest gateway
EXPOSE 6066 8080 8081

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["tokenboard-healthcheck"]

ENTRYPOINT ["tokenboard"]
CMD ["worker"]
