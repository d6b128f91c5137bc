# One image for every Vigil service: `vigil run <service>`, `vigil agent`, or `vigil up`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, pinned, so a code change does not reinstall them.
COPY pyproject.toml setup.py constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
# gcc only for the build of the C extension (services/gateway/metrics/_rwscan.c): removed
# in the same layer, and the build fails rather than ship without the extension
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install -c constraints.txt . \
    && python -c "import services.gateway.metrics._rwscan" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/vigil vigil \
    && mkdir -p /data && chown vigil /data

USER vigil
WORKDIR /home/vigil
ENV VIGIL_DATA_DIR=/data
EXPOSE 8080

ENTRYPOINT ["vigil"]
CMD ["up", "--host", "0.0.0.0"]
