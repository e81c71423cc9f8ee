"""``hypo replay``: stream ``.vital`` recordings to ``hypo serve`` as Vital Recorder does, in real time or faster.

    hypo replay case.vital --to http://127.0.0.1:8000 --token-file serve-log/tokens.json
    hypo replay recordings/ --to http://127.0.0.1:8000 --speed 60 --transport socketio --token TOKEN

The client is :func:`hypo.serve.replay.replay`; this is its command-line front.
"""

from __future__ import annotations

from hypo.runtime import OneLineParser, one_line_errors
from hypo.serve.replay import replay

PROG = "hypo replay"


def main(argv: list[str] | None = None, prog: str = PROG):
    """Entry point of ``hypo replay``; user errors end in one line on stderr with status 2."""
    p = OneLineParser(prog=prog, description="Stream .vital recordings to a live server in Vital Recorder's format "
                                             "(VitalDB's Web Monitoring JSON), in real time or faster.")
    p.add_argument("recording", help="a .vital file, or a folder of them (one room each, streamed at once)")
    p.add_argument("--to", required=True, metavar="URL", help="the server, e.g. http://127.0.0.1:8000")
    p.add_argument("--speed", type=float, default=1.0, help="seconds of recording per second (1, 10, 60...; "
                                                            "default 1: real time)")
    p.add_argument("--room", default=None, help="room name (default: the file's name; a folder's rooms are "
                                                "ROOM-<file>)")
    p.add_argument("--transport", choices=("http", "socketio"), default="http",
                   help="POST /api/send (form field data), or the Socket.IO event send_data (deflated)")
    p.add_argument("--eio", type=int, choices=(3, 4), default=4,
                   help="Engine.IO protocol for --transport socketio: 4 (Socket.IO 3+) or 3 (VitalDB's reference "
                        "server's generation, over WebSocket)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--token", help="the recorder's token (sent as the payload's vrcode)")
    g.add_argument("--token-file", help="a tokens file: its first recorder token is used")
    p.add_argument("--keep-times", action="store_true", help="send the file's own times, not live ones")
    args = p.parse_args(argv)
    with one_line_errors(prog):
        token = args.token
        if token is None:
            from hypo.serve.auth import Tokens

            token = Tokens.load(args.token_file).first_recorder_token()
        return replay(args.recording, args.to, token, args.speed, args.room, args.transport, args.eio,
                      args.keep_times)
