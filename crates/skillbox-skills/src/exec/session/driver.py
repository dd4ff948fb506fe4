# skillbox-session-driver: the Python side of a code_session (docs/writing-skills.md).
# Started as `python3 -I -c DRIVER SESSION_ID [ARGS...]` inside the session's sandbox, with
# the request pipe on fd 3 and the answer pipe on fd 4. Frames both ways: a 4-byte big-endian
# length, then that many bytes of UTF-8 JSON. A request is {"code": "..."}; an answer is
# {"stdout", "stderr", "value", "error", "interrupted", "duration_ms", ...}.
#
# The pipes are moved off 3 and 4 to close-on-exec descriptors and 3 and 4 are closed, so
# that nothing the code prints, and no `os.write(4, ...)`, reaches the answer pipe: the
# code's sys.stdout and sys.stderr are buffers of the call. Code in this same interpreter
# could still find the driver's descriptors (through gc or the frames): what is guaranteed
# is that output cannot forge an answer, not that hostile code cannot lie about itself.


def _skillbox_session():
    import _ast  # the builtin module: `ast` itself costs 9 ms of startup
    import builtins
    import io
    import json
    import os
    import signal
    import sys
    import time

    rfd = os.dup(3)  # Python makes duplicates non-inheritable (close-on-exec)
    wfd = os.dup(4)
    os.close(3)
    os.close(4)
    limit = 1024 * 1024
    state = {"running": False}

    def on_interrupt(signum, frame):
        # Only a call is interrupted; between calls the driver ignores the signal.
        if state["running"]:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)

    def read_exact(n):
        chunks = []
        while n > 0:
            b = os.read(rfd, min(n, 1 << 20))
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def write_frame(obj):
        data = json.dumps(obj).encode("utf-8", "surrogatepass")
        data = len(data).to_bytes(4, "big") + data
        view = memoryview(data)
        while view:
            n = os.write(wfd, view)
            view = view[n:]

    def capped(text):
        if len(text) <= limit:
            return text, False
        return text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :], True

    def described(e):
        import traceback  # only when there is an exception to describe

        if isinstance(e, SyntaxError):
            lines = traceback.format_exception_only(type(e), e)
        else:
            tb = e.__traceback__
            # The driver's own frames come first: the traceback starts at the code's.
            while tb is not None and tb.tb_frame.f_code.co_filename != "<session>":
                tb = tb.tb_next
            lines = traceback.format_exception(type(e), e, tb)
        return {"type": type(e).__name__, "message": str(e), "traceback": "".join(lines)}

    namespace = {"__name__": "__main__", "__builtins__": builtins}
    while True:
        head = read_exact(4)
        if head is None:
            return
        body = read_exact(int.from_bytes(head, "big"))
        if body is None:
            return
        try:
            code = json.loads(body)["code"]
        except Exception as e:  # a malformed request is answered, not fatal
            write_frame({"error": {"type": "ProtocolError", "message": str(e), "traceback": ""}})
            continue
        out, err = io.StringIO(), io.StringIO()
        answer = {"value": None, "error": None, "interrupted": False}
        saved = sys.stdout, sys.stderr
        started = time.monotonic()
        try:
            sys.stdout, sys.stderr = out, err
            state["running"] = True
            try:
                tree = compile(code, "<session>", "exec", _ast.PyCF_ONLY_AST)
                last = None
                if tree.body and isinstance(tree.body[-1], _ast.Expr):
                    last = _ast.Expression(tree.body.pop().value)
                exec(compile(tree, "<session>", "exec"), namespace)
                if last is not None:
                    value = eval(compile(last, "<session>", "eval"), namespace)
                    if value is not None:
                        namespace["_"] = value
                        answer["value"] = repr(value)
            finally:
                state["running"] = False
        except BaseException as e:  # KeyboardInterrupt and SystemExit included
            state["running"] = False
            answer["error"] = described(e)
            answer["interrupted"] = isinstance(e, KeyboardInterrupt)
        finally:
            sys.stdout, sys.stderr = saved
        answer["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
        answer["stdout"], answer["stdout_truncated"] = capped(out.getvalue())
        answer["stderr"], answer["stderr_truncated"] = capped(err.getvalue())
        if answer["value"] is not None:
            answer["value"], _ = capped(answer["value"])
        write_frame(answer)


_skillbox_session()
