"""Packet Monitor (pktmon) names: drop reasons, and the component names of a trace's rundown events.

Drop reasons: the values pktmon logs in DropReason (events 160/170), as Microsoft's pktmon and VFP
tooling name them (the same list microsoft/retina maps for Windows drops). Numbers outside the list
are shown as ``reason N``. Drop locations are pktmon-internal codes, shown in hex.
"""

from __future__ import annotations

# (first value, names of the consecutive values from it); "" marks an unused value
_RANGES: tuple[tuple[int, str], ...] = (
    (
        0,
        "Unknown InvalidData InvalidPacket Resources NotReady Disconnected NotAccepted Busy Filtered "
        "FilteredVLAN UnauthorizedVLAN UnauthorizedMAC FailedSecurityPolicy FailedPvlanSetting Qos Ipsec "
        "MacSpoofing DhcpGuard RouterGuard BridgeReserved VirtualSubnetId RequiredExtensionMissing "
        "InvalidConfig MTUMismatch NativeFwdingReq InvalidVlanFormat InvalidDestMac InvalidSourceMac "
        "InvalidFirstNBTooSmall Wnv StormLimit InjectedIcmp FailedDestinationListUpdate NicDisabled "
        "FailedPacketFilter SwitchDataFlowDisabled FilteredIsolationUntagged InvalidPDQueue LowPower",
    ),
    (
        201,
        "Pause Reset SendAborted ProtocolNotBound Failure InvalidLength HostOutOfMemory FrameTooLong "
        "FrameTooShort FrameLengthError CrcError BadFrameChecksum FcsError SymbolError HeadQTimeout "
        "StalledDiscard RxQFull PhysLayerError DmaError FirmwareError DecryptionFailed BadSignature "
        "CoalescingError - VlanSpoofing UnallowedEtherType VportDown SteeringMismatch",
    ),
    (401, "MicroportError VfNotReady MicroportNotReady VMBusError"),
    (
        601,
        "FL_LoopbackPacket FL_InvalidSnapHeader FL_InvalidEthernetType FL_InvalidPacketLength "
        "FL_HeaderNotContiguous FL_InvalidDestinationType FL_InterfaceNotReady FL_ProviderNotReady "
        "FL_InvalidLsoInfo FL_InvalidUsoInfo FL_InvalidMedium FL_InvalidArpHeader FL_NoClientInterface "
        "FL_TooManyNetBuffers FL_FlsNpiClientDrop",
    ),
    (
        701,
        "ArpGuard ArpLimiter DhcpLimiter BlockBroadcast BlockNonIp ArpFilter Ipv4Guard Ipv6Guard MacGuard "
        "BroadcastNoDestinations UnicastNoDestination UnicastPortNotReady SwitchCallbackFailed "
        "Icmpv6Limiter Intercept InterceptBlock NDPGuard PortBlocked NicSuspended",
    ),
    (
        901,
        "NL_BadSourceAddress NL_NotLocallyDestined NL_ProtocolUnreachable NL_PortUnreachable NL_BadLength "
        "NL_MalformedHeader NL_NoRoute NL_BeyondScope NL_InspectionDrop NL_TooManyDecapsulations "
        "NL_AdministrativelyProhibited NL_BadChecksum NL_ReceivePathMax NL_HopLimitExceeded "
        "NL_AddressUnreachable NL_RscPacket NL_ForwardPathMax NL_ArbitrationUnhandled NL_InspectionAbsorb "
        "NL_DontFragmentMtuExceeded NL_BufferLengthExceeded NL_AddressResolutionTimeout "
        "NL_AddressResolutionFailure NL_IpsecFailure NL_ExtensionHeadersFailure NL_IpsnpiClientDrop "
        "NL_UnsupportedOffload NL_RoutingFailure NL_AncillaryDataFailure NL_RawDataFailure "
        "NL_SessionStateFailure NL_IpsnpiModifiedButNotForwarded NL_IpsnpiNoNextHop NL_IpsnpiNoCompartment "
        "NL_IpsnpiNoInterface NL_IpsnpiNoSubInterface NL_IpsnpiInterfaceDisabled "
        "NL_IpsnpiSegmentationFailed NL_IpsnpiNoEthernetHeader NL_IpsnpiUnexpectedFragment "
        "NL_IpsnpiUnsupportedInterfaceType NL_IpsnpiInvalidLsoInfo NL_IpsnpiInvalidUsoInfo NL_InternalError "
        "NL_AdministrativelyConfigured NL_BadOption NL_LoopbackDisallowed NL_SmallerScope NL_QueueFull "
        "NL_InterfaceDisabled NL_IcmpGeneric NL_IcmpTruncatedHeader NL_IcmpInvalidChecksum "
        "NL_IcmpInspection NL_IcmpNeighborDiscoveryLoopback NL_IcmpUnknownType NL_IcmpTruncatedIpHeader "
        "NL_IcmpOversizedIpHeader NL_IcmpNoHandler NL_IcmpRespondingToError NL_IcmpInvalidSource "
        "NL_IcmpInterfaceRateLimit NL_IcmpPathRateLimit NL_IcmpNoRoute NL_IcmpMatchingRequestNotFound "
        "NL_IcmpBufferTooSmall NL_IcmpAncillaryDataQuery NL_IcmpIncorrectHopLimit NL_IcmpUnknownCode "
        "NL_IcmpSourceNotLinkLocal NL_IcmpTruncatedNdHeader NL_IcmpInvalidNdOptSourceLinkAddr "
        "NL_IcmpInvalidNdOptMtu NL_IcmpInvalidNdOptPrefixInformation NL_IcmpInvalidNdOptRouteInformation "
        "NL_IcmpInvalidNdOptRdnss NL_IcmpInvalidNdOptDnssl NL_IcmpPacketParsingFailure NL_IcmpDisallowed "
        "NL_IcmpInvalidRouterAdvertisement NL_IcmpSourceFromDifferentLink "
        "NL_IcmpInvalidRedirectDestinationOrTarget NL_IcmpInvalidNdTarget NL_IcmpNaMulticastAndSolicited "
        "NL_IcmpNdLinkLayerAddressIsLocal NL_IcmpDuplicateEchoRequest NL_IcmpNotAPotentialRouter "
        "NL_IcmpInvalidMldQuery NL_IcmpInvalidMldReport NL_IcmpLocallySourcedMldReport "
        "NL_IcmpNotLocallyDestined NL_ArpInvalidSource NL_ArpInvalidTarget NL_ArpDlSourceIsLocal "
        "NL_ArpNotLocallyDestined NL_NlClientDiscard NL_IpsnpiUroSegmentSizeExceedsMtu "
        "NL_IcmpFragmentedPacket NL_FirstFragmentIncomplete NL_SourceViolation NL_IcmpJumbogram "
        "NL_SwUsoFailure",
    ),
    (
        1200,
        "INET_SourceUnspecified INET_DestinationMulticast INET_HeaderInvalid INET_ChecksumInvalid "
        "INET_EndpointNotFound INET_ConnectedPath INET_SessionState INET_ReceiveInspection INET_AckInvalid "
        "INET_ExpectedSyn INET_Rst INET_SynRcvdSyn INET_SimultaneousConnect INET_PawsFailed "
        "INET_LandAttack INET_MissedReset INET_OutsideWindow INET_DuplicateSegment INET_ClosedWindow "
        "INET_TcbRemoved INET_FinWait2 INET_ReassemblyConflict INET_FinReceived "
        "INET_ListenerInvalidFlags INET_TcbNotInTcbTable INET_TimeWaitTcbReceivedRstOutsideWindow "
        "INET_TimeWaitTcbSynAndOtherFlags INET_TimeWaitTcb INET_SynAckWithFastopenCookieRequest "
        "INET_PauseAccept INET_SynAttack INET_AcceptInspection INET_AcceptRedirection",
    ),
    (
        1401,
        "Ipsec_BadSpi Ipsec_SALifetimeExpired Ipsec_WrongSA Ipsec_ReplayCheckFailed Ipsec_InvalidPacket "
        "Ipsec_IntegrityCheckFailed Ipsec_ClearTextDrop Ipsec_AuthFirewallDrop Ipsec_ThrottleDrop "
        "Ipsec_Dosp_Block Ipsec_Dosp_ReceivedMulticast Ipsec_Dosp_InvalidPacket "
        "Ipsec_Dosp_StateLookupFailed Ipsec_Dosp_MaxEntries Ipsec_Dosp_KeymodNotAllowed "
        "Ipsec_Dosp_MaxPerIpRateLimitQueues Ipsec_NoMemory Ipsec_Unsuccessful",
    ),
    (
        1501,
        "NetCx_NetPacketLayoutParseFailure NetCx_SoftwareChecksumFailure NetCx_NicQueueStop "
        "NetCx_InvalidNetBufferLength NetCx_LSOFailure NetCx_USOFailure "
        "NetCx_BufferBounceFailureAndPacketIgnore",
    ),
)

#: DropReason value -> name (``Drop_`` prefix left out).
DROP_REASONS: dict[int, str] = {
    first + i: name for first, names in _RANGES for i, name in enumerate(names.split()) if name != "-"
}


def drop_text(reason: int, location: int, where: str | None = None) -> str:
    """``dropped at <component>: Filtered (reason 8), location 0xe0004`` (no commas: notes are comma-joined)."""
    name = DROP_REASONS.get(reason)
    what = f"{name} (reason {reason})" if name else f"reason {reason}"
    at = f" at {where}" if where else ""
    loc = f" location {location:#x}" if location else ""
    return f"dropped{at}: {what}{loc}"


def component_label(component: int, names: dict[int, str]) -> str:
    """``XDP Lightweight Filter [61]``: the component's description (driver left out) and its id."""
    name = names.get(component)
    if not name:
        return f"component {component}"
    desc = name.rsplit(" (", 1)[0] if name.endswith(")") else name
    return f"{desc} [{component}]"
