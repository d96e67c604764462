"""A block of loopback addresses nobody else on this machine is using.

All of 127.0.0.0/8 reaches the loopback interface, so each instance can listen on its own
address with the standard port, like pods do. A block is 127.B.0.0/24 for a B whose
addresses are free, so that several topologies (parallel test runs) never collide.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

POSTGRES_PORT = 5432
PGBOUNCER_PORT = 6432
FIRST_INSTANCE_HOST = 2  # 127.B.0.2 is the first instance; .1 is left alone
POOLER_HOST = 250


@dataclass(frozen=True)
class AddressBlock:
    second_octet: int

    def instance(self, index: int) -> str:
        return f"127.{self.second_octet}.0.{FIRST_INSTANCE_HOST + index}"

    @property
    def pooler(self) -> str:
        return f"127.{self.second_octet}.0.{POOLER_HOST}"


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_free_block(instances: int, attempts: int = 50) -> AddressBlock:
    for octet in random.sample(range(10, 250), attempts):
        block = AddressBlock(octet)
        hosts = [block.instance(i) for i in range(instances)]
        if all(_free(h, POSTGRES_PORT) for h in hosts) and _free(block.pooler, PGBOUNCER_PORT):
            return block
    raise RuntimeError("no free block of loopback addresses found")
