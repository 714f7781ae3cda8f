"""Provider GUIDs and kernel group ids used by etwtools."""

from __future__ import annotations

import uuid

TCPIP_KERNEL = uuid.UUID("9a280ac0-c8e0-11d1-84e2-00c04fb998a2")  # classic kernel TcpIp
UDPIP_KERNEL = uuid.UUID("bf3a50c5-a9c9-4988-a005-2df0b7c80f80")  # classic kernel UdpIp
PROCESS_KERNEL = uuid.UUID("3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c")  # classic kernel Process
THREAD_KERNEL = uuid.UUID("3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c")
SYSTEMCONFIG_KERNEL = uuid.UUID("01853a65-418f-4f36-aefc-dc0f1d2fd235")
EVENTTRACE_HEADER = uuid.UUID("68fdd900-4a3e-11d1-84f4-0000f80464e3")  # group 0: logfile header
IMAGE_KERNEL = uuid.UUID("2cb15d1d-5fc1-11d2-abe1-00a0c911f518")
KERNEL_PROCESS = uuid.UUID("22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716")  # Microsoft-Windows-Kernel-Process
KERNEL_NETWORK = uuid.UUID("7dd42a49-5329-4832-8dfd-43d979153a88")  # Microsoft-Windows-Kernel-Network
TCPIP = uuid.UUID("2f07e2ee-15db-40f1-90ef-9d7ba282188a")  # Microsoft-Windows-TCPIP
NDIS_PACKETCAPTURE = uuid.UUID("2ed6006e-4729-4609-b423-3ee7bcd678ef")  # Microsoft-Windows-NDIS-PacketCapture
PKTMON = uuid.UUID("4d4f80d9-c8bd-4d73-bb5b-19c90402c5ac")  # Microsoft-Windows-PktMon
KERNEL_TRACE_CONTROL = uuid.UUID("b3e675d7-2554-4f18-830b-2762732560de")  # xperf/PerfView image rundown

#: Kernel group id (hook id >> 8) -> provider GUID, for SYSTEM/COMPACT/PERFINFO headers.
KERNEL_GROUPS: dict[int, uuid.UUID] = {
    0x00: EVENTTRACE_HEADER,
    0x03: PROCESS_KERNEL,
    0x05: THREAD_KERNEL,
    0x06: TCPIP_KERNEL,
    0x08: UDPIP_KERNEL,
    0x0B: SYSTEMCONFIG_KERNEL,
    0x14: IMAGE_KERNEL,
}
