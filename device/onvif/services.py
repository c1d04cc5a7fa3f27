"""The ONVIF operations: Device (ver10), Media (ver10) and Media2 (ver20).

Each operation is an :class:`Operation` in :data:`OPERATIONS`, keyed by its
WSDL namespace and element name, with the least level allowed to call it
(``pre-auth`` < ``User`` < ``Operator`` < ``Administrator``, ONVIF Core 5.9.4
access classes mapped onto refcam's roles viewer < operator < admin). Every
handler takes a :class:`Call` (who, when, the stores) and the request's
operation element, and returns the response element or raises
:class:`~.errors.OnvifFault`. The web adapter (``device.onvif.web``) does the
transport, the authentication and the forced-change rule; nothing here reads
the clock or the network.

Operations not listed answer ``env:Receiver/ter:ActionNotSupported``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lxml import etree

from ..errors import PasswordPolicyError, StorageError, UserError
from .errors import (
    OnvifFault,
    action_not_supported,
    invalid_arg,
    not_authorized,
    operation_prohibited,
)
from .media import (
    VIDEO_SOURCE_CONFIG_TOKEN,
    VIDEO_SOURCE_TOKEN,
    MediaDescription,
    MediaProfile,
    media_profiles,
)
from .soap import NS, TDS, TR2, TRT, TT, Prepared, text_of, xml_safe

if TYPE_CHECKING:
    from common.handoff import BootHandoff

    from ..audit import AuditLog
    from ..credentials import CredentialStore, User

Level = Literal["pre-auth", "User", "Operator", "Administrator"]
LEVEL_RANK: dict[str, int] = {"pre-auth": 0, "User": 1, "Operator": 2, "Administrator": 3}
ROLE_OF_LEVEL = {"User": "viewer", "Operator": "operator", "Administrator": "admin"}
LEVEL_OF_ROLE = {role: level for level, role in ROLE_OF_LEVEL.items()}
ONVIF_VERSION = (2, 60)  # Major, Minor of the ONVIF specification set we follow (WSDLs of 2.60+)

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
MEDIA2_PATH = "/onvif/media2_service"
SNAPSHOT_PATH = "/onvif/snapshot.jpg"
SERVICE_PATHS = {NS["tds"]: DEVICE_PATH, NS["trt"]: MEDIA_PATH, NS["tr2"]: MEDIA2_PATH}


@dataclass(frozen=True)
class Call:
    """One authenticated (or pre-auth) operation call: who, when, from where, and the device."""

    user: User | None
    now: float  # seconds since the epoch, read once for this request
    host: str  # the device address the client reached (kernel's word), for XAddrs and URIs
    port: int  # the HTTPS port
    source: str  # the client's address
    store: CredentialStore
    audit: AuditLog
    handoff: BootHandoff
    media: MediaDescription
    reboot: Callable[[], None]
    start_upgrade: Callable[[Call], str] | None = None  # returns the upload URI (device.onvif.upgrade)
    factory_reset: Callable[[Call, str], None] | None = None  # device.factoryreset through the app's stores

    @property
    def base_url(self) -> str:
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass  # a name
        return f"https://{host}:{self.port}"

    @property
    def actor(self) -> str:
        return self.user.name if self.user is not None else "-"

    def record(self, event: str, detail: dict[str, Any]) -> None:
        self.audit.record(event, actor=self.actor, source=self.source, detail=detail, now=self.now)

    def hook(self, event: str, detail: dict[str, Any]) -> Callable[[], object]:
        """An audit record to write inside an effect's transaction (they commit together)."""
        return functools.partial(self.record, event, detail)


Handler = Callable[[Call, etree._Element], Awaitable[etree._Element | Prepared]]


@dataclass(frozen=True)
class Operation:
    level: Level
    handler: Handler


OPERATIONS: dict[tuple[str, str], Operation] = {}


def operation(namespace: str, name: str, level: Level) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[(NS[namespace], name)] = Operation(level, handler)
        return handler

    return register


def find_operation(namespace: str, name: str) -> Operation:
    """The operation, or raise ``ter:ActionNotSupported``."""
    op = OPERATIONS.get((namespace, name))
    if op is None:
        raise action_not_supported(name[:64])
    return op


def _b(value: bool) -> str:
    return "true" if value else "false"


async def _off_loop(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Slow password hashing runs off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(func, *args, **kwargs))


def mac_address(serial: str) -> str:
    """A stable, locally administered MAC for the simulated interface (from the serial)."""
    raw = bytearray(hashlib.sha256(b"refcam mac\x00" + serial.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02  # unicast, locally administered (IEEE 802, U/L bit)
    return ":".join(f"{b:02x}" for b in raw)


def hostname(call: Call) -> str:
    return f"cam-{call.handoff.identity.serial}"


def scopes(identity_model: str, media: MediaDescription) -> list[str]:
    """The discovery scopes (ONVIF Core 7.3.2.2; profiles S and, with H.264 over RTSP, T)."""
    found = ["onvif://www.onvif.org/Profile/Streaming", "onvif://www.onvif.org/type/video_encoder"]
    if media.rtsp_port is not None:
        found.append("onvif://www.onvif.org/Profile/T")
    found += [f"onvif://www.onvif.org/hardware/{identity_model}", "onvif://www.onvif.org/name/refcam"]
    return found


# -- Device service ------------------------------------------------------------


@operation("tds", "GetSystemDateAndTime", "pre-auth")
async def get_system_date_and_time(call: Call, _: etree._Element) -> etree._Element:
    utc = dt.datetime.fromtimestamp(call.now, dt.UTC)

    def date_time() -> list[etree._Element]:
        return [
            TT.Time(TT.Hour(str(utc.hour)), TT.Minute(str(utc.minute)), TT.Second(str(utc.second))),
            TT.Date(TT.Year(str(utc.year)), TT.Month(str(utc.month)), TT.Day(str(utc.day))),
        ]

    return TDS.GetSystemDateAndTimeResponse(
        TDS.SystemDateAndTime(
            TT.DateTimeType("Manual"),
            TT.DaylightSavings("false"),
            TT.TimeZone(TT.TZ("UTC0")),
            TT.UTCDateTime(*date_time()),
            TT.LocalDateTime(*date_time()),
        )
    )


@operation("tds", "GetDeviceInformation", "User")
async def get_device_information(call: Call, _: etree._Element) -> Prepared:
    identity = call.handoff.identity
    return _device_information(
        identity.vendor, identity.model, call.handoff.firmware.version, identity.serial, identity.hardware_id
    )


@functools.lru_cache(maxsize=4)
def _device_information(vendor: str, model: str, version: str, serial: str, hardware_id: str) -> Prepared:
    """Built and serialised once per identity and firmware (clients ask on every connection)."""
    return Prepared.of(TDS.GetDeviceInformationResponse(
        TDS.Manufacturer(vendor),
        TDS.Model(model),
        TDS.FirmwareVersion(version),
        TDS.SerialNumber(serial),
        TDS.HardwareId(hardware_id),
    ))


def _device_capabilities(call: Call) -> etree._Element:
    return TDS.Capabilities(
        TDS.Network(IPFilter="false", ZeroConfiguration="false", IPVersion6="false", DynDNS="false", NTP="0"),
        TDS.Security(
            **{
                "TLS1.0": "false", "TLS1.1": "false", "TLS1.2": "true", "OnboardKeyGeneration": "false",
                "AccessPolicyConfig": "false", "DefaultAccessPolicy": "false", "Dot1X": "false",
                "RemoteUserHandling": "false", "X.509Token": "false", "SAMLToken": "false",
                "KerberosToken": "false", "UsernameToken": "true", "HttpDigest": "true", "RELToken": "false",
                "MaxUsers": "32", "MaxUserNameLength": "32", "MaxPasswordLength": "128",
            }
        ),
        TDS.System(
            DiscoveryResolve="true", DiscoveryBye="true", RemoteDiscovery="false", SystemBackup="false",
            SystemLogging="true", FirmwareUpgrade=_b(call.start_upgrade is not None),
            HttpFirmwareUpgrade=_b(call.start_upgrade is not None), HttpSystemBackup="false",
            HttpSystemLogging="false", HttpSupportInformation="false",
        ),
    )


def _media_capabilities(namespace: str, maker: Any, call: Call) -> etree._Element:
    rtsp = call.media.rtsp_port is not None
    return maker.Capabilities(
        maker.ProfileCapabilities(MaximumNumberOfProfiles=str(len(media_profiles(call.media)))),
        maker.StreamingCapabilities(
            RTPMulticast="false", RTP_TCP="false", RTP_RTSP_TCP=_b(rtsp),
            NonAggregateControl="false", **({"NoRTSPStreaming": _b(not rtsp)} if namespace == "trt" else {}),
        ),
        SnapshotUri="true", Rotation="false", VideoSourceMode="false", OSD="false",
    )


@operation("tds", "GetServiceCapabilities", "User")
async def get_device_service_capabilities(call: Call, _: etree._Element) -> etree._Element:
    return TDS.GetServiceCapabilitiesResponse(_device_capabilities(call))


@operation("tds", "GetServices", "User")
async def get_services(call: Call, request: etree._Element) -> etree._Element:
    include = text_of(request, "tds:IncludeCapability") in ("true", "1")
    services = []
    capabilities: dict[str, Callable[[], etree._Element]] = {
        "tds": lambda: _device_capabilities(call),
        "trt": lambda: _media_capabilities("trt", TRT, call),
        "tr2": lambda: _media_capabilities("tr2", TR2, call),
    }
    for ns_key, caps in capabilities.items():
        children = [TDS.Namespace(NS[ns_key]), TDS.XAddr(call.base_url + SERVICE_PATHS[NS[ns_key]])]
        if include:
            children.append(TDS.Capabilities(caps()))
        children.append(TDS.Version(TT.Major(str(ONVIF_VERSION[0])), TT.Minor(str(ONVIF_VERSION[1]))))
        services.append(TDS.Service(*children))
    return TDS.GetServicesResponse(*services)


@operation("tds", "GetCapabilities", "User")
async def get_capabilities(call: Call, request: etree._Element) -> etree._Element:
    categories = {(c.text or "").strip() for c in request.findall("tds:Category", namespaces=NS)} or {"All"}
    known = {"All", "Analytics", "Device", "Events", "Imaging", "Media", "PTZ"}
    if not categories <= known:
        raise invalid_arg(f"unknown capability category {sorted(categories - known)[0][:32]!r}")
    parts = []
    if categories & {"All", "Device"}:
        parts.append(
            TT.Device(
                TT.XAddr(call.base_url + DEVICE_PATH),
                TT.Network(TT.IPFilter("false"), TT.ZeroConfiguration("false"), TT.IPVersion6("false"), TT.DynDNS("false")),
                TT.System(
                    TT.DiscoveryResolve("true"), TT.DiscoveryBye("true"), TT.RemoteDiscovery("false"),
                    TT.SystemBackup("false"), TT.SystemLogging("true"),
                    TT.FirmwareUpgrade(_b(call.start_upgrade is not None)),
                    TT.SupportedVersions(TT.Major(str(ONVIF_VERSION[0])), TT.Minor(str(ONVIF_VERSION[1]))),
                ),
                TT.Security(
                    TT("TLS1.1", "false"),
                    TT("TLS1.2", "true"), TT.OnboardKeyGeneration("false"), TT.AccessPolicyConfig("false"),
                    TT("X.509Token", "false"), TT.SAMLToken("false"), TT.KerberosToken("false"), TT.RELToken("false"),
                ),
            )
        )
    if categories & {"All", "Media"}:
        rtsp = call.media.rtsp_port is not None
        parts.append(
            TT.Media(
                TT.XAddr(call.base_url + MEDIA_PATH),
                TT.StreamingCapabilities(TT.RTPMulticast("false"), TT.RTP_TCP("false"), TT.RTP_RTSP_TCP(_b(rtsp))),
            )
        )
    if not parts:
        raise OnvifFault("Receiver", ("ActionNotSupported", "NoSuchService"), "the requested capability category is not provided")
    return TDS.GetCapabilitiesResponse(TDS.Capabilities(*parts))


@operation("tds", "GetScopes", "User")
async def get_scopes(call: Call, _: etree._Element) -> etree._Element:
    return TDS.GetScopesResponse(
        *(TDS.Scopes(TT.ScopeDef("Fixed"), TT.ScopeItem(s)) for s in scopes(call.handoff.identity.model, call.media))
    )


@operation("tds", "GetHostname", "User")
async def get_hostname(call: Call, _: etree._Element) -> etree._Element:
    return TDS.GetHostnameResponse(TDS.HostnameInformation(TT.FromDHCP("false"), TT.Name(hostname(call))))


@operation("tds", "GetNetworkInterfaces", "User")
async def get_network_interfaces(call: Call, _: etree._Element) -> etree._Element:
    try:
        address = ipaddress.ip_address(call.host)
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1")
    ip = (
        TT.IPv4(TT.Enabled("true"), TT.Config(TT.Manual(TT.Address(str(address)), TT.PrefixLength("8")), TT.DHCP("false")))
        if address.version == 4
        else TT.IPv6(TT.Enabled("true"), TT.Config(TT.AcceptRouterAdvert("false"), TT.Manual(TT.Address(str(address)), TT.PrefixLength("128")), TT.DHCP("Off")))
    )
    return TDS.GetNetworkInterfacesResponse(
        TDS.NetworkInterfaces(
            TT.Enabled("true"),
            TT.Info(TT.Name("eth0"), TT.HwAddress(mac_address(call.handoff.identity.serial)), TT.MTU("1500")),
            ip,
            token="eth0",  # noqa: S106 - an ONVIF reference token
        )
    )


@operation("tds", "GetNetworkProtocols", "User")
async def get_network_protocols(call: Call, _: etree._Element) -> etree._Element:
    protocols = [TDS.NetworkProtocols(TT.Name("HTTPS"), TT.Enabled("true"), TT.Port(str(call.port)))]
    protocols.append(TDS.NetworkProtocols(TT.Name("HTTP"), TT.Enabled("false"), TT.Port("80")))
    if call.media.rtsp_port is not None:
        protocols.append(TDS.NetworkProtocols(TT.Name("RTSP"), TT.Enabled("true"), TT.Port(str(call.media.rtsp_port))))
    return TDS.GetNetworkProtocolsResponse(*protocols)


@operation("tds", "GetUsers", "Administrator")
async def get_users(call: Call, _: etree._Element) -> etree._Element:
    return TDS.GetUsersResponse(
        *(TDS.User(TT.Username(u.name), TT.UserLevel(LEVEL_OF_ROLE[u.role])) for u in call.store.list_users())
    )


@dataclass(frozen=True)
class UserArg:
    name: str
    password: str | None
    level: str | None


def _user_args(request: etree._Element) -> list[UserArg]:
    users = request.findall("tds:User", namespaces=NS)
    if not users:
        raise invalid_arg("no tds:User given", "UsernameMissing")
    if len(users) > 32:
        raise invalid_arg("at most 32 users in one request")
    found = []
    for element in users:
        name = text_of(element, "tt:Username")
        if not name:
            raise invalid_arg("a tds:User has no tt:Username", "UsernameMissing")
        password = element.findtext("tt:Password", namespaces=NS)
        level = text_of(element, "tt:UserLevel")
        if level == "Anonymous":
            raise operation_prohibited("anonymous users are not allowed", "AnonymousNotAllowed")
        if level is not None and level not in ROLE_OF_LEVEL:
            raise invalid_arg(f"user level {level[:32]!r} is not Administrator, Operator or User")
        if password is not None and len(password) > 128:
            raise operation_prohibited("password is longer than 128 characters", "PasswordTooLong")
        found.append(UserArg(name, password, level))
    return found


def _user_fault(exc: UserError | PasswordPolicyError) -> OnvifFault:
    if isinstance(exc, PasswordPolicyError):
        return operation_prohibited("password refused: " + "; ".join(exc.reasons), "PasswordTooWeak")
    if exc.code == "user_exists":
        return operation_prohibited(str(exc), "UsernameClash")
    if exc.code == "no_such_user":
        return invalid_arg(str(exc), "UsernameMissing")
    if exc.code == "last_admin":
        return operation_prohibited(str(exc), "FixedUser")
    return invalid_arg(str(exc))


@operation("tds", "CreateUsers", "Administrator")
async def create_users(call: Call, request: etree._Element) -> etree._Element:
    for arg in _user_args(request):
        if arg.password is None or arg.level is None:
            raise invalid_arg(f"user {arg.name[:32]!r} needs tt:Password and tt:UserLevel")
        role = ROLE_OF_LEVEL[arg.level]
        try:
            await _off_loop(
                call.store.create_user, arg.name, role, arg.password, now=call.now,
                commit_hook=call.hook("user_created", {"username": arg.name, "role": role, "via": "onvif"}),
            )
        except (UserError, PasswordPolicyError) as exc:
            raise _user_fault(exc) from exc
    return TDS.CreateUsersResponse()


@operation("tds", "DeleteUsers", "Administrator")
async def delete_users(call: Call, request: etree._Element) -> etree._Element:
    names = [(e.text or "").strip() for e in request.findall("tds:Username", namespaces=NS)]
    if not names or not all(names):
        raise invalid_arg("no tds:Username given", "UsernameMissing")
    for name in names:
        if call.user is not None and name == call.user.name:
            raise operation_prohibited("you cannot delete the user you are logged in as", "FixedUser")
        try:
            call.store.delete_user(name, commit_hook=call.hook("user_deleted", {"username": name, "via": "onvif"}))
        except UserError as exc:
            raise _user_fault(exc) from exc
    return TDS.DeleteUsersResponse()


def is_own_password_change(user: User, request: etree._Element) -> bool:
    """Whether ``request`` (a SetUser) only changes the caller's own password (level unchanged)."""
    try:
        args = _user_args(request)
    except OnvifFault:
        return False
    if len(args) != 1:
        return False
    arg = args[0]
    return arg.name == user.name and arg.password is not None and arg.level in (None, LEVEL_OF_ROLE[user.role])


@operation("tds", "SetUser", "User")  # own password: any level; anything else: Administrator (checked below)
async def set_user(call: Call, request: etree._Element) -> etree._Element:
    assert call.user is not None  # not a pre-auth operation
    me = call.user
    args = _user_args(request)
    if not is_own_password_change(me, request) and me.role != "admin":
        raise not_authorized("only an Administrator may change other users or user levels")
    for arg in args:
        try:
            if arg.name == me.name and arg.password is not None:
                current = call.store.protocol_secret(me.name)
                if current is None:
                    raise not_authorized("this account has no sealed secret; change the password on the web API")
                await _off_loop(
                    call.store.change_password, me.name, current, arg.password, source=call.source, now=call.now,
                    audit=lambda event, detail: call.record(event, detail),
                    commit_hook=call.hook("password_change", {"forced": me.must_change, "via": "onvif"}),
                )
            elif arg.password is not None:
                await _off_loop(
                    call.store.reset_password, arg.name, arg.password, now=call.now,
                    commit_hook=call.hook("password_reset", {"username": arg.name, "via": "onvif"}),
                )
            if arg.level is not None and (arg.name != me.name or LEVEL_OF_ROLE[me.role] != arg.level):
                role = ROLE_OF_LEVEL[arg.level]
                call.store.set_role(
                    arg.name, role, commit_hook=call.hook("role_change", {"username": arg.name, "role": role, "via": "onvif"})
                )
        except (UserError, PasswordPolicyError) as exc:
            raise _user_fault(exc) from exc
    return TDS.SetUserResponse()


@operation("tds", "SystemReboot", "Administrator")
async def system_reboot(call: Call, _: etree._Element) -> etree._Element:
    call.record("reboot_requested", {"via": "onvif"})
    call.reboot()
    return TDS.SystemRebootResponse(TDS.Message("rebooting"))


@operation("tds", "SetSystemFactoryDefault", "Administrator")
async def set_system_factory_default(call: Call, request: etree._Element) -> etree._Element:
    """Hard and Soft alike (refcam keeps no network settings of its own): users and settings
    back to the factory state, admin with the label password and the forced change.
    Recorded before any effect; identity, certificates, fuses, firmware and audit log stay."""
    kind = text_of(request, "tds:FactoryDefault")
    if kind not in ("Hard", "Soft"):
        raise invalid_arg("FactoryDefault must be Hard or Soft")
    if call.factory_reset is None:
        raise action_not_supported("SetSystemFactoryDefault")
    call.record("factory_default_requested", {"kind": kind, "via": "onvif"})
    try:
        await _off_loop(call.factory_reset, call, kind)
    except StorageError as exc:
        raise OnvifFault("Receiver", ("Action",), "the factory default could not be applied; see the device log") from exc
    return TDS.SetSystemFactoryDefaultResponse()


@operation("tds", "GetSystemLog", "Administrator")
async def get_system_log(call: Call, request: etree._Element) -> etree._Element:
    kind = text_of(request, "tds:LogType")
    if kind not in ("System", "Access"):
        raise invalid_arg("LogType must be System or Access")
    try:  # the newest 500 entries (Access: the login and user events only)
        head, _ = call.audit.head()
        entries = call.audit.page(after=max(0, head - 500), limit=500)
    except StorageError as exc:
        raise OnvifFault("Receiver", ("Action",), "the audit log cannot be read") from exc
    access = {"login", "login_failure", "lockout", "lockout_end", "logout", "password_change", "onvif_token_refused"}
    lines = [_log_line(e) for e in entries if kind == "System" or e.event in access]
    return TDS.GetSystemLogResponse(TDS.SystemLog(TT.String("\n".join(lines))))


def _log_line(entry: Any) -> str:
    when = dt.datetime.fromtimestamp(entry.time, dt.UTC).isoformat(timespec="seconds")
    return xml_safe(f"{when} {entry.event} actor={entry.actor} source={entry.source}")


@operation("tds", "StartFirmwareUpgrade", "Administrator")
async def start_firmware_upgrade(call: Call, _: etree._Element) -> etree._Element:
    if call.start_upgrade is None:
        raise action_not_supported("StartFirmwareUpgrade")
    uri = call.start_upgrade(call)
    return TDS.StartFirmwareUpgradeResponse(TDS.UploadUri(uri), TDS.UploadDelay("PT0S"), TDS.ExpectedDownTime("PT60S"))


# -- Media (ver10) and Media2 (ver20) ----------------------------------------------


def _profile(call: Call, token: str | None) -> MediaProfile:
    profiles = media_profiles(call.media)
    if not profiles:
        raise OnvifFault("Receiver", ("ActionNotSupported", "NoProfile"), "this device serves no media stream")
    if token is None:
        return profiles[0]
    for profile in profiles:
        if profile.token == token:
            return profile
    raise invalid_arg(f"no media profile {token[:40]!r}", "NoProfile")


def _bounds(profile: MediaProfile) -> etree._Element:
    return TT.Bounds(x="0", y="0", width=str(profile.width), height=str(profile.height))


def _source_config(profile: MediaProfile, wrap: Callable[..., etree._Element]) -> etree._Element:
    return wrap(
        TT.Name("video source"), TT.UseCount("1"),
        TT.SourceToken(VIDEO_SOURCE_TOKEN), _bounds(profile), token=VIDEO_SOURCE_CONFIG_TOKEN,
    )


def _encoder10(profile: MediaProfile, wrap: Callable[..., etree._Element]) -> etree._Element:
    children = [
        TT.Name(profile.name), TT.UseCount("1"), TT.Encoding(profile.encoding),
        TT.Resolution(TT.Width(str(profile.width)), TT.Height(str(profile.height))),
        TT.Quality(f"{profile.quality:g}"),
        TT.RateControl(TT.FrameRateLimit(str(round(profile.fps))), TT.EncodingInterval("1"), TT.BitrateLimit("8000")),
    ]
    if profile.encoding == "H264":
        children.append(TT.H264(TT.GovLength(str(max(1, round(profile.fps)))), TT.H264Profile("Baseline")))
    children += [
        TT.Multicast(TT.Address(TT.Type("IPv4"), TT.IPv4Address("0.0.0.0")), TT.Port("0"), TT.TTL("0"), TT.AutoStart("false")),  # noqa: S104 - multicast off
        TT.SessionTimeout("PT60S"),
    ]
    return wrap(*children, token=profile.encoder_token)


def _encoder20(profile: MediaProfile, wrap: Callable[..., etree._Element]) -> etree._Element:
    attrs = {"token": profile.encoder_token}
    if profile.encoding == "H264":
        attrs.update(GovLength=str(max(1, round(profile.fps))), Profile="Baseline")
    return wrap(
        TT.Name(profile.name), TT.UseCount("1"), TT.Encoding(profile.encoding),
        TT.Resolution(TT.Width(str(profile.width)), TT.Height(str(profile.height))),
        TT.RateControl(TT.FrameRateLimit(f"{profile.fps:g}"), TT.BitrateLimit("8000"), ConstantBitRate="false"),
        TT.Quality(f"{profile.quality:g}"),
        **attrs,
    )


def stream_uri(call: Call, profile: MediaProfile) -> str:
    if profile.transport == "RTSP":
        host = f"[{call.host}]" if ":" in call.host else call.host
        return f"rtsps://{host}:{call.media.rtsp_port}{profile.path}"
    return call.base_url + profile.path


def snapshot_uri(call: Call) -> str:
    return call.base_url + SNAPSHOT_PATH


def _media_uri(uri: str) -> etree._Element:
    return TRT.MediaUri(TT.Uri(uri), TT.InvalidAfterConnect("false"), TT.InvalidAfterReboot("false"), TT.Timeout("PT0S"))


@operation("trt", "GetServiceCapabilities", "User")
async def media_service_capabilities(call: Call, _: etree._Element) -> etree._Element:
    return TRT.GetServiceCapabilitiesResponse(_media_capabilities("trt", TRT, call))


@operation("trt", "GetProfiles", "User")
async def media_get_profiles(call: Call, _: etree._Element) -> etree._Element:
    return TRT.GetProfilesResponse(
        *(
            TRT.Profiles(
                TT.Name(p.name), _source_config(p, TT.VideoSourceConfiguration),
                _encoder10(p, TT.VideoEncoderConfiguration), token=p.token, fixed="true",
            )
            for p in media_profiles(call.media)
        )
    )


@operation("trt", "GetProfile", "User")
async def media_get_profile(call: Call, request: etree._Element) -> etree._Element:
    p = _profile(call, text_of(request, "trt:ProfileToken") or "")
    return TRT.GetProfileResponse(
        TRT.Profile(
            TT.Name(p.name), _source_config(p, TT.VideoSourceConfiguration),
            _encoder10(p, TT.VideoEncoderConfiguration), token=p.token, fixed="true",
        )
    )


@operation("trt", "GetVideoSources", "User")
async def media_get_video_sources(call: Call, _: etree._Element) -> etree._Element:
    p = _profile(call, None)
    return TRT.GetVideoSourcesResponse(
        TRT.VideoSources(
            TT.Framerate(f"{p.fps:g}"), TT.Resolution(TT.Width(str(p.width)), TT.Height(str(p.height))),
            token=VIDEO_SOURCE_TOKEN,
        )
    )


@operation("trt", "GetVideoSourceConfigurations", "User")
async def media_get_source_configs(call: Call, _: etree._Element) -> etree._Element:
    return TRT.GetVideoSourceConfigurationsResponse(_source_config(_profile(call, None), TRT.Configurations))


@operation("trt", "GetVideoEncoderConfigurations", "User")
async def media_get_encoder_configs(call: Call, _: etree._Element) -> etree._Element:
    return TRT.GetVideoEncoderConfigurationsResponse(
        *(_encoder10(p, TRT.Configurations) for p in media_profiles(call.media))
    )


@operation("trt", "GetStreamUri", "User")
async def media_get_stream_uri(call: Call, request: etree._Element) -> etree._Element:
    profile = _profile(call, text_of(request, "trt:ProfileToken") or "")
    protocol = text_of(request, "trt:StreamSetup/tt:Transport/tt:Protocol")
    if profile.transport == "RTSP" and protocol not in (None, "RTSP", "TCP"):
        raise invalid_arg(f"profile {profile.token} streams over RTSPS (TCP), not {protocol[:16] if protocol else ''}", "InvalidStreamSetup")
    return TRT.GetStreamUriResponse(_media_uri(stream_uri(call, profile)))


@operation("trt", "GetSnapshotUri", "User")
async def media_get_snapshot_uri(call: Call, request: etree._Element) -> etree._Element:
    _profile(call, text_of(request, "trt:ProfileToken") or "")
    return TRT.GetSnapshotUriResponse(_media_uri(snapshot_uri(call)))


@operation("tr2", "GetServiceCapabilities", "User")
async def media2_service_capabilities(call: Call, _: etree._Element) -> etree._Element:
    return TR2.GetServiceCapabilitiesResponse(_media_capabilities("tr2", TR2, call))


@operation("tr2", "GetProfiles", "User")
async def media2_get_profiles(call: Call, request: etree._Element) -> etree._Element:
    wanted = text_of(request, "tr2:Token")
    profiles = [_profile(call, wanted)] if wanted else media_profiles(call.media)
    return TR2.GetProfilesResponse(
        *(
            TR2.Profiles(
                TR2.Name(p.name),
                TR2.Configurations(_source_config(p, TR2.VideoSource), _encoder20(p, TR2.VideoEncoder)),
                token=p.token, fixed="true",
            )
            for p in profiles
        )
    )


@operation("tr2", "GetVideoSourceConfigurations", "User")
async def media2_get_source_configs(call: Call, _: etree._Element) -> etree._Element:
    return TR2.GetVideoSourceConfigurationsResponse(_source_config(_profile(call, None), TR2.Configurations))


@operation("tr2", "GetVideoEncoderConfigurations", "User")
async def media2_get_encoder_configs(call: Call, _: etree._Element) -> etree._Element:
    return TR2.GetVideoEncoderConfigurationsResponse(
        *(_encoder20(p, TR2.Configurations) for p in media_profiles(call.media))
    )


@operation("tr2", "GetStreamUri", "User")
async def media2_get_stream_uri(call: Call, request: etree._Element) -> etree._Element:
    profile = _profile(call, text_of(request, "tr2:ProfileToken") or "")
    return TR2.GetStreamUriResponse(TR2.Uri(stream_uri(call, profile)))


@operation("tr2", "GetSnapshotUri", "User")
async def media2_get_snapshot_uri(call: Call, request: etree._Element) -> etree._Element:
    _profile(call, text_of(request, "tr2:ProfileToken") or "")
    return TR2.GetSnapshotUriResponse(TR2.Uri(snapshot_uri(call)))
