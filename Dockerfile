# hallpass in a container: the relay (SMTP) and the DPO console, one process.
#
#   docker build -t hallpass .
#   docker run -d --name hallpass \
#     -p 25:2525 -p 127.0.0.1:8025:8025 \
#     -v hallpass-data:/var/lib/hallpass \
#     -v /srv/hallpass/hallpass.toml:/etc/hallpass/hallpass.toml:ro \
#     hallpass
#   docker exec -it hallpass hallpass --config /etc/hallpass/hallpass.toml user add dpo --role dpo
#
# The image runs as an unprivileged user and listens on 2525 (map the host's port 25 to it).
# Give `docker stop` time for the graceful stop: `docker stop -t 100 hallpass`.
# See docs/deploy.md.

# ---- build ---------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The C compiler the image ships builds ring (TLS) and the bundled SQLite; nothing else is needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin hallpass \
 && install -m 0755 target/release/hallpass /usr/local/bin/hallpass

# ---- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: to verify the upstream's certificate ([delivery] require_tls).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 hallpass \
 && useradd --system --uid 10001 --gid hallpass --home-dir /var/lib/hallpass --shell /usr/sbin/nologin hallpass \
 && install -d -m 0700 -o hallpass -g hallpass /var/lib/hallpass
COPY --from=build /usr/local/bin/hallpass /usr/local/bin/hallpass
COPY detectors/ /etc/hallpass/detectors/
COPY config/templates/ /etc/hallpass/templates/
COPY packaging/hallpass.docker.toml /etc/hallpass/hallpass.toml
RUN hallpass --config /etc/hallpass/hallpass.toml check

USER hallpass
WORKDIR /var/lib/hallpass
VOLUME ["/var/lib/hallpass"]
# 2525: SMTP from the mail system (publish the host's 25 onto it); 25 if you run it as root
# with [smtp] listen = "0.0.0.0:25"; 8025: the DPO console.
EXPOSE 25 2525 8025
STOPSIGNAL SIGTERM
# Healthy while the relay answers SMTP with its 220 greeting (bash's /dev/tcp: no extra tools).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2525 && read -t 4 -r line <&3 && [[ $line == 220* ]] && printf 'QUIT\\r\\n' >&3"]
ENTRYPOINT ["hallpass", "--config", "/etc/hallpass/hallpass.toml"]
CMD ["serve"]
