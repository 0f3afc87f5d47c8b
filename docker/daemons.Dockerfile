# The zero_sudo daemons (relay, and the ones later issues add): one image, one process each.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY daemons ./daemons
RUN pip install --no-cache-dir '.[daemons]' && useradd --system --uid 10001 zerosudo
USER zerosudo
# Each service picks its daemon with its command; the relay is the default.
CMD ["zero-sudo-relay"]
