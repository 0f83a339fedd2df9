#!/usr/bin/env python3
"""Registers many agents to holdfast at once, for benchmarks: one UDP socket, up to WINDOW
REGISTERs in flight, each answered 401 and retried with Digest MD5 (qop=auth, RFC 3261
§22.4, RFC 2617 §3.2.2), retransmitted after 0.5 s (RFC 3261 §17.1.2.2 timer E, not
doubled: loopback), given up after 8 tries.

  register_agents.py SERVER:PORT CONTACT_IP:CONTACT_PORT FIRST LAST [EXPIRES]

registers users a<FIRST>..a<LAST> with passwords pw<i>, each Contact
sip:a<i>@CONTACT_IP:CONTACT_PORT. Prints the users that failed, one a line; exits 1 if any.
"""
import hashlib
import os
import re
import select
import socket
import sys
import time

WINDOW = 200


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    server = (host, int(port))
    contact = sys.argv[2]
    first, last = int(sys.argv[3]), int(sys.argv[4])
    expires = int(sys.argv[5]) if len(sys.argv) > 5 else 3600
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    local = "%s:%d" % sock.getsockname()
    tag = os.urandom(4).hex()
    todo = list(range(last, first - 1, -1))
    # user -> [cseq, authorization or None, last sent, tries]
    flight = {}
    failed = []

    def send(i):
        cseq, auth, _, tries = flight[i]
        lines = [
            "REGISTER sip:%s:%s SIP/2.0" % server,
            "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s-%d-%d;rport" % (local, tag, i, cseq),
            "From: <sip:a%d@%s:%s>;tag=%s%d" % (i, host, port, tag, i),
            "To: <sip:a%d@%s:%s>" % (i, host, port),
            "Call-ID: reg-%s-%d" % (tag, i),
            "CSeq: %d REGISTER" % cseq,
            "Contact: <sip:a%d@%s>" % (i, contact),
            "Expires: %d" % expires,
            "Max-Forwards: 70",
        ]
        if auth:
            lines.append("Authorization: " + auth)
        msg = "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
        sock.sendto(msg.encode(), server)
        flight[i] = [cseq, auth, time.monotonic(), tries + 1]

    def authorization(i, challenge):
        realm = re.search(r'realm="([^"]*)"', challenge).group(1)
        nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
        uri = "sip:%s:%s" % server
        ha1 = md5("a%d:%s:pw%d" % (i, realm, i))
        ha2 = md5("REGISTER:" + uri)
        cnonce = os.urandom(4).hex()
        response = md5("%s:%s:00000001:%s:auth:%s" % (ha1, nonce, cnonce, ha2))
        return (
            'Digest username="a%d", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"'
            % (i, realm, nonce, uri, response, cnonce)
        )

    deadline = time.monotonic() + 60 + (last - first) / 50
    while (todo or flight) and time.monotonic() < deadline:
        while todo and len(flight) < WINDOW:
            i = todo.pop()
            flight[i] = [1, None, 0.0, 0]
            send(i)
        ready, _, _ = select.select([sock], [], [], 0.05)
        while ready:
            try:
                data = sock.recv(65536, socket.MSG_DONTWAIT).decode(errors="replace")
            except BlockingIOError:
                break
            head = data.split("\r\n\r\n", 1)[0]
            status = head.split(" ", 2)[1] if head.startswith("SIP/2.0 ") else ""
            m = re.search(r"^Call-ID:\s*reg-\w+-(\d+)", head, re.M | re.I)
            c = re.search(r"^CSeq:\s*(\d+)", head, re.M | re.I)
            if not m or not c or int(m.group(1)) not in flight:
                continue
            i = int(m.group(1))
            if int(c.group(1)) != flight[i][0] or status.startswith("1"):
                continue
            if status == "200":
                del flight[i]
            elif status == "401" and flight[i][0] < 3:
                www = re.search(r'^WWW-Authenticate:\s*(Digest .*algorithm=MD5.*)$', head, re.M | re.I)
                if not www:
                    failed.append(i)
                    del flight[i]
                    continue
                flight[i] = [flight[i][0] + 1, authorization(i, www.group(1)), 0.0, 0]
                send(i)
            else:
                failed.append(i)
                del flight[i]
        now = time.monotonic()
        for i, (_, _, sent, tries) in list(flight.items()):
            if now - sent > 0.5:
                if tries >= 8:
                    failed.append(i)
                    del flight[i]
                else:
                    send(i)
    failed.extend(flight)
    failed.extend(todo)
    for i in sorted(failed):
        print("a%d failed" % i)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
