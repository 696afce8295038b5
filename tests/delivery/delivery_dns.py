"""Stand-in DNS answers for chosen names, so name-based tests send no traffic anywhere."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Answer ``getaddrinfo`` for the given names; everything else resolves for real (literals only).

    Answers are shaped as the real resolver shapes them (AF_INET6 and a 4-tuple for IPv6), so code
    under test sees IPv6 records the way it would in production.
    """
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in answers:
            if not answers[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [_info(address, port) for address in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _info(address: str, port: Any) -> tuple[Any, ...]:
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
