set(ATBUS_STREAM_SOURCES
  sendbuf.c
  rob.c
  rtt.c
  engine.c
  codec.c
)
