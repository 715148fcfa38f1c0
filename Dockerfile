# graphrec's CLI in a container: `docker run --env-file /etc/graphrec/env -v graphrec-artifacts:/app/artifacts
# graphrec recommend`. Secrets come from the environment only.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The CPU build of the pinned torch first, so `pip install .` finds it satisfied (PyPI would pull CUDA).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY graphrec ./graphrec
COPY etl ./etl
COPY training ./training
COPY serving ./serving
COPY evaluation ./evaluation
COPY configs ./configs
RUN pip install . && useradd --create-home --uid 1000 graphrec && mkdir -p artifacts && chown graphrec artifacts

USER graphrec
VOLUME ["/app/artifacts"]
ENTRYPOINT ["graphrec"]
CMD ["--help"]
