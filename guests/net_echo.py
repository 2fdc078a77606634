#!/usr/bin/env python3
"""Host-side echo for the guest's net-echo/net-bench under QEMU.

Pairs with `-netdev dgram,...` (QEMU sends each Ethernet frame as one UDP
datagram): every datagram received on PORT is sent back unchanged to its
sender. Runs until killed. Usage: net_echo.py PORT
"""
import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, peer = sock.recvfrom(65536)
    sock.sendto(data, peer)
