# irsa-webhook: the admission server image.
#   docker build -t localhost:32000/irsa-webhook:0.1.0 .
# Build stage: a wheel of this package and of every dependency, installed into a venv.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/irsa-webhook \
    && pip --python /opt/irsa-webhook/bin/python install --no-index --find-links /wheels /wheels/irsa_webhook-*.whl

# Run stage: the same slim Python with only the venv added (no pip, no compilers, no sources);
# nothing runs through a shell.
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="irsa-webhook" \
      org.opencontainers.image.description="IAM Roles for Service Accounts outside EKS: the pod identity webhook" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/irsa-webhook/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/irsa-webhook /opt/irsa-webhook
# A fixed UID/GID with no passwd entry: the Deployment's runAsUser/runAsGroup/fsGroup match it.
USER 65532:65532
EXPOSE 8443 9999
ENTRYPOINT ["irsa-webhook", "serve"]
