"""A real gRPC client (gRPC core, through Debian's python3-grpcio) for the
end-to-end tests: unary, bidirectional streaming, and error statuses.
Messages are raw bytes (identity serializers), matching weft's grpc-echo.
Prints one JSON object with what it saw."""
import json
import queue
import sys

import grpc

target = sys.argv[1]
ident = lambda b: b
out = {}
with grpc.insecure_channel(target) as ch:
    echo = ch.unary_unary("/weft.sample.Echo/Echo", request_serializer=ident, response_deserializer=ident)
    resp, call = echo.with_call(b"hello", timeout=10)
    out["unary"] = resp.decode()
    out["served_by"] = dict(call.initial_metadata()).get("x-served-by")

    # Full duplex: each message is sent only after the previous echo came
    # back, which works only if both directions stream.
    chat = ch.stream_stream("/weft.sample.Echo/Chat", request_serializer=ident, response_deserializer=ident)
    q = queue.Queue()
    q.put(b"m0")

    def requests():
        while True:
            m = q.get()
            if m is None:
                return
            yield m

    got = []
    for i, m in enumerate(chat(requests(), timeout=10)):
        got.append(m.decode())
        q.put(f"m{i + 1}".encode() if i < 4 else None)
    out["stream"] = got

    for method, md in [("/weft.sample.Echo/Fail", ()), ("/weft.sample.Echo/Echo", (("x-fault", "abort"),))]:
        call = ch.unary_unary(method, request_serializer=ident, response_deserializer=ident)
        try:
            call(b"x", timeout=10, metadata=md)
            out[method + str(md)] = "OK"
        except grpc.RpcError as e:
            out[method + str(md)] = e.code().name
print(json.dumps(out))
