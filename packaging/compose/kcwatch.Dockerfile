# kcwatch built from this repository, for packaging/compose.
FROM debian:12
COPY . /src
WORKDIR /src
RUN sh packaging/install-deps.sh \
 && cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j2 \
 && install -m 755 /build/kcwatch /usr/local/bin/kcwatch \
 && mkdir -p /var/lib/kcwatch
ENTRYPOINT ["/usr/local/bin/kcwatch"]
