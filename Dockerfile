# streamlb: one image for every component (watch, run, speak); the command picks the role.
#
#   docker build -t streamlb/streamlb:0.1.0 .
#
# Stage 1 builds a wheel with the Cython fast path compiled; stage 2 installs only that wheel and its
# dependencies on a slim runtime without compilers.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY events ./events
COPY reconciler ./reconciler
COPY fastpath ./fastpath
COPY benchmarks ./benchmarks
RUN python -m pip install --no-cache-dir "Cython>=3.0,<4" "setuptools>=68" wheel \
 && python -m pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
 && rm -rf /wheels \
 && streamlb version | grep -q "(fastpath: c)"
# Non-root by default; the speaker DaemonSet runs it as root with only NET_RAW and NET_ADMIN.
USER 65532:65532
ENTRYPOINT ["streamlb"]
CMD ["--help"]
