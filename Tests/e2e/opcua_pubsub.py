"""OPC UA PubSub over MQTT with the JSON message mapping: an independent publisher ("a gateway") for the tests.

Written from the OPC UA specification (OPC 10000-14 "PubSub" and OPC 10000-6 "Mappings"), not from SceneStream's
Swift code. It builds the JSON NetworkMessages a PubSub Publisher sends to an MQTT broker and publishes them with
paho-mqtt (2.x API).

Spec sections this follows (reference.opcfoundation.org; section numbers move between 1.05.0x revisions, so each
point names the section as found and the URL it was read at):

* Part 14 7.2.5.3 "JSON NetworkMessage" (1.04: 7.2.3.2), https://reference.opcfoundation.org/Core/Part14/v105/docs/7.2.5.3
  and https://reference.opcfoundation.org/Core/Part14/v104/docs/7.2.3.2 -- a JSON object with MessageId (String,
  a globally unique id, e.g. a Guid as a string; always present), MessageType "ua-data" (always present),
  PublisherId (String; "if the PublisherId is a UInteger, the UInteger value is converted to a String without
  leading zeros"), WriterGroupName (String, added in 1.05), DataSetClassId (String), Messages (JSON array of
  DataSetMessages). The NodeSet's JsonNetworkMessage DataType (i=19311) lists exactly those fields.
* Part 14 7.2.5.4 / 7.2.5.4.1 "DataSetMessage" (1.04: 7.2.3.3), https://reference.opcfoundation.org/Core/Part14/v105/docs/7.2.5.4
  -- DataSetWriterId (UInt16; a String in 1.04 before errata 1.04.2), DataSetWriterName (String, 1.05.01+),
  PublisherId / WriterGroupName (only when there is no NetworkMessage header), SequenceNumber (UInt32, +1 per
  message), MetaDataVersion (ConfigurationVersionDataType {MajorVersion, MinorVersion}), MinorVersion (1.05.03+),
  Timestamp (DateTime), Status (StatusCode), MessageType ("ua-keyframe" | "ua-deltaframe" | "ua-event" |
  "ua-keepalive"), Payload (object: DataSet field name -> value). A delta frame carries only changed fields; a
  keep-alive has no Payload and its SequenceNumber is the *next expected* one (Part 14 7.2.4.5.8 KeepAlive message).
  The NodeSet's JsonDataSetMessage DataType (i=19312) lists exactly those fields.
* Part 14 6.2.4.2 "DataSetFieldContentMask" and 5.3.2: a field is a Variant unless StatusCode/SourceTimestamp/...
  bits are set, then it is a DataValue.
* Part 14 6.3.2.3.1 "DataSetMessageContentMask" (JsonDataSetMessageContentMask): bit 7 was "ReversibleFieldEncoding"
  up to 1.05.03 ("fields are encoded in the reversible JSON encoding and in the non-reversible JSON encoding
  otherwise"); 1.05.04 renamed it FieldEncoding1 and added FieldEncoding2 (bit 11), choosing Verbose vs Compact
  encoding (Table 112), keeping the old reversible form as "deprecated JSON ReversibleFieldEncoding".
  7.2.5.4.2: with the VerboseEncoding the top-level Variants of a DataSet are collapsed (no UaType) -- i.e. plain
  JSON values; VerboseEncoding is the recommended default for DataSetMessages.
* Part 14 7.2.5.5.2 "DataSetMetaData" (JSON, MessageType "ua-metadata"), https://reference.opcfoundation.org/Core/Part14/v105/docs/7.3.2.1
  -- MessageId, MessageType, PublisherId, DataSetWriterId (UInt16), WriterGroupName and DataSetWriterName (optional
  in early 1.05, mandatory in the latest), Timestamp (UtcTime), MetaData (DataSetMetaDataType). 6.2.3.2.3
  DataSetMetaDataType {Name, Description, Fields, DataSetClassId, ConfigurationVersion}; 6.2.3.2.4 FieldMetaData
  {Name, Description, FieldFlags, BuiltInType, DataType (NodeId), ValueRank, ArrayDimensions, MaxStringLength,
  DataSetFieldId (Guid), Properties}; 6.2.3.2.6 ConfigurationVersionDataType {MajorVersion, MinorVersion}, both
  VersionTime (UInt32 seconds since 2000-01-01T00:00:00Z, OPC 10000-4). Annex A.3.1 has a worked example.
* Part 14 7.3.5.7 "Topic" tree (renumbered 7.3.4.7 in later revisions), https://reference.opcfoundation.org/Core/Part14/v105/docs/7.3.5.7
  -- <Prefix>/<Encoding>/<MqttMessageType>/<PublisherId>/[<WriterGroup>[/<DataSetWriter>]], default prefix
  "opcua", encoding "json"; 7.3.5.7.2 Table 178: "data" RETAIN=False, "metadata" RETAIN=True; 7.3.5.7.3 data topic
  <Prefix>/<Encoding>/data/<PublisherId>/<WriterGroup>[/<DataSetWriter>]; 7.3.5.7.4 metadata topic
  <Prefix>/<Encoding>/metadata/<PublisherId>/<WriterGroup>/<DataSetWriter>.
* Part 6 5.4 "JSON" (https://reference.opcfoundation.org/Core/Part6/v105/docs/5.4.2.12, 5.4.2.17, 5.4.2.18 and
  Annex H "Reversible and NonReversible Encoding (deprecated)", https://reference.opcfoundation.org/specs/OPC-10000-6/annex-h):
  - Variant, reversible: {"Type": <built-in type id>, "Body": <value>}; non-reversible: just the Body value.
    Latest 1.05 (Compact/Verbose): {"UaType": <id>, "Value": <value>}.
  - DataValue: {"Value": <Variant>, "Status": <StatusCode>, "SourceTimestamp", "SourcePicoseconds",
    "ServerTimestamp", "ServerPicoseconds"}, fields with default values omitted (Status omitted when Good). Latest
    1.05 flattens the Variant into the DataValue ({"UaType", "Value", "Status", ...}).
  - StatusCode, reversible: a JSON number (Good omitted); non-reversible: {"Code": n, "Symbol": "..."} (both
    omitted for Good; Symbol omitted if unknown; InfoBits ignored for the symbol lookup); Compact: {"Code": n}.
  - Int64/UInt64 as decimal strings; NaN/Infinity/-Infinity as strings; DateTime ISO 8601 strings (UTC "Z");
    ByteString base64; Guid as its string form.
* Status codes and their symbols: OPCFoundation/UA-Nodeset Schema/StatusCode.csv (top two bits: 00 Good,
  01 Uncertain, 10 Bad).

The three field encodings offered (the `reversible` / `compact` flags, default neither):

* non-reversible (default; = 1.04 NonReversible = 1.05.04 Verbose with its top-level collapse):
      "Temp": 21.5
      "Flow": {"Value": 3.2, "Status": {"Code": 1083179008, "Symbol": "UncertainLastUsableValue"},
               "SourceTimestamp": "2026-01-01T00:00:00.000Z"}
* reversible=True (1.04 / 1.05.00-03 ReversibleFieldEncoding, deprecated but common):
      "Temp": {"Type": 11, "Body": 21.5}
      "Flow": {"Value": {"Type": 11, "Body": 3.2}, "Status": 1083179008, "SourceTimestamp": "2026-..."}
  (the DataSetMessage header Status is then a number too)
* compact=True (1.05.04+ CompactEncoding; less common, here to exercise tolerant parsers):
      "Temp": {"UaType": 11, "Value": 21.5}
      "Flow": {"UaType": 11, "Value": 3.2, "Status": {"Code": 1083179008}, "SourceTimestamp": "2026-..."}

Usage:
    pub = Publisher(broker.port, "gw1", "line1")
    pub.publish_metadata("pump1", [("Temp", "Double"), ("Running", "Boolean")])
    pub.publish_data("pump1", {"Temp": 21.5, "Running": DataValue(True, status=UNCERTAIN_LAST_USABLE_VALUE)})
    pub.publish_raw("opcua/json/data/gw1/line1/pump1", b"{not json")
    pub.close()
"""
import base64
import datetime as _dt
import json
import math
import threading
import uuid

# ---------------------------------------------------------------------------------------------------------------
# Built-in types (Part 6 Table 1)
# ---------------------------------------------------------------------------------------------------------------
BUILTIN_TYPES = {
    "Null": 0, "Boolean": 1, "SByte": 2, "Byte": 3, "Int16": 4, "UInt16": 5, "Int32": 6, "UInt32": 7,
    "Int64": 8, "UInt64": 9, "Float": 10, "Double": 11, "String": 12, "DateTime": 13, "Guid": 14,
    "ByteString": 15, "XmlElement": 16, "NodeId": 17, "ExpandedNodeId": 18, "StatusCode": 19,
    "QualifiedName": 20, "LocalizedText": 21, "ExtensionObject": 22, "DataValue": 23, "Variant": 24,
    "DiagnosticInfo": 25,
}
BOOLEAN, SBYTE, BYTE, INT16, UINT16, INT32, UINT32, INT64, UINT64, FLOAT, DOUBLE, STRING, DATETIME, GUID, \
    BYTESTRING = range(1, 16)
STATUSCODE, LOCALIZEDTEXT, VARIANT = 19, 21, 24

# ---------------------------------------------------------------------------------------------------------------
# Status codes (values and symbols from OPCFoundation/UA-Nodeset Schema/StatusCode.csv)
# ---------------------------------------------------------------------------------------------------------------
GOOD = 0x00000000
UNCERTAIN = 0x40000000
BAD = 0x80000000
GOOD_LOCAL_OVERRIDE = 0x00960000
GOOD_CLAMPED = 0x00300000
UNCERTAIN_NO_COMMUNICATION_LAST_USABLE_VALUE = 0x408F0000
UNCERTAIN_LAST_USABLE_VALUE = 0x40900000
UNCERTAIN_SUBSTITUTE_VALUE = 0x40910000
UNCERTAIN_INITIAL_VALUE = 0x40920000
UNCERTAIN_SENSOR_NOT_ACCURATE = 0x40930000
UNCERTAIN_ENGINEERING_UNITS_EXCEEDED = 0x40940000
UNCERTAIN_SUB_NORMAL = 0x40950000
BAD_UNEXPECTED_ERROR = 0x80010000
BAD_INTERNAL_ERROR = 0x80020000
BAD_COMMUNICATION_ERROR = 0x80050000
BAD_TIMEOUT = 0x800A0000
BAD_NO_COMMUNICATION = 0x80310000
BAD_WAITING_FOR_INITIAL_DATA = 0x80320000
BAD_OUT_OF_RANGE = 0x803C0000
BAD_CONFIGURATION_ERROR = 0x80890000
BAD_NOT_CONNECTED = 0x808A0000
BAD_DEVICE_FAILURE = 0x808B0000
BAD_SENSOR_FAILURE = 0x808C0000
BAD_OUT_OF_SERVICE = 0x808D0000

STATUS_SYMBOLS = {
    GOOD: "Good", UNCERTAIN: "Uncertain", BAD: "Bad",
    GOOD_LOCAL_OVERRIDE: "GoodLocalOverride", GOOD_CLAMPED: "GoodClamped",
    UNCERTAIN_NO_COMMUNICATION_LAST_USABLE_VALUE: "UncertainNoCommunicationLastUsableValue",
    UNCERTAIN_LAST_USABLE_VALUE: "UncertainLastUsableValue",
    UNCERTAIN_SUBSTITUTE_VALUE: "UncertainSubstituteValue",
    UNCERTAIN_INITIAL_VALUE: "UncertainInitialValue",
    UNCERTAIN_SENSOR_NOT_ACCURATE: "UncertainSensorNotAccurate",
    UNCERTAIN_ENGINEERING_UNITS_EXCEEDED: "UncertainEngineeringUnitsExceeded",
    UNCERTAIN_SUB_NORMAL: "UncertainSubNormal",
    BAD_UNEXPECTED_ERROR: "BadUnexpectedError", BAD_INTERNAL_ERROR: "BadInternalError",
    BAD_COMMUNICATION_ERROR: "BadCommunicationError", BAD_TIMEOUT: "BadTimeout",
    BAD_NO_COMMUNICATION: "BadNoCommunication", BAD_WAITING_FOR_INITIAL_DATA: "BadWaitingForInitialData",
    BAD_OUT_OF_RANGE: "BadOutOfRange", BAD_CONFIGURATION_ERROR: "BadConfigurationError",
    BAD_NOT_CONNECTED: "BadNotConnected", BAD_DEVICE_FAILURE: "BadDeviceFailure",
    BAD_SENSOR_FAILURE: "BadSensorFailure", BAD_OUT_OF_SERVICE: "BadOutOfService",
}


def status_symbol(code):
    """The symbol for a status code (InfoBits, the low 16 bits, ignored), or None if not known here."""
    return STATUS_SYMBOLS.get(code & 0xFFFF0000)


def severity(code):
    """'Good', 'Uncertain' or 'Bad' from the top two bits (11 is reserved and treated as Bad)."""
    return ("Good", "Uncertain", "Bad", "Bad")[(code >> 30) & 3]


# ---------------------------------------------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------------------------------------------
NON_REVERSIBLE = "nonreversible"  # 1.04 NonReversible == 1.05.04+ Verbose (top-level collapsed) -- the default
REVERSIBLE = "reversible"          # 1.04 / 1.05.00-03 reversible field encoding ({"Type", "Body"})
COMPACT = "compact"                # 1.05.04+ CompactEncoding ({"UaType", "Value"})


def _encoding(reversible=False, compact=False):
    if reversible and compact:
        raise ValueError("choose reversible or compact, not both")
    return REVERSIBLE if reversible else COMPACT if compact else NON_REVERSIBLE


class _Omit:
    def __repr__(self):
        return "OMIT"


OMIT = _Omit()  # pass for an optional header field to leave it out of the message entirely


class Variant:
    """A value with an explicit built-in type (id or name, e.g. Variant(3.5, "Float")); plain Python values are
    Variants of an inferred type (bool Boolean, int Int32/Int64, float Double, str String, datetime DateTime,
    bytes ByteString, uuid.UUID Guid, list an array of the first element's type)."""

    def __init__(self, value, type=None):
        self.value = value
        self.type = _type_id(type) if type is not None else infer_type(value)

    def __repr__(self):
        return f"Variant({self.value!r}, {self.type})"


class DataValue:
    """A DataSet field represented as a DataValue (Part 14 5.3.2): value plus status and timestamps. `value` may
    be None (e.g. a Bad status with no value); `type` forces the Variant's built-in type."""

    def __init__(self, value, status=None, source_timestamp=None, server_timestamp=None, type=None,
                 source_picoseconds=None, server_picoseconds=None):
        self.value, self.status, self.type = value, status, type
        self.source_timestamp, self.server_timestamp = source_timestamp, server_timestamp
        self.source_picoseconds, self.server_picoseconds = source_picoseconds, server_picoseconds

    def __repr__(self):
        return f"DataValue({self.value!r}, status={self.status!r}, source_timestamp={self.source_timestamp!r})"


class StatusCode(int):
    """An int tagged as a StatusCode *value* (a field whose DataType is StatusCode, built-in type 19)."""


class LocalizedText:
    def __init__(self, text, locale=None):
        self.text, self.locale = text, locale


def _type_id(t):
    if isinstance(t, int):
        return t
    if t not in BUILTIN_TYPES:
        raise ValueError(f"unknown built-in type {t!r}")
    return BUILTIN_TYPES[t]


def infer_type(value):
    """The built-in type id a plain Python value is published as."""
    if value is None:
        return 0
    if isinstance(value, Variant):
        return value.type
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, StatusCode):
        return STATUSCODE
    if isinstance(value, int):
        return INT32 if -2**31 <= value < 2**31 else INT64 if -2**63 <= value < 2**63 else UINT64
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, _dt.datetime):
        return DATETIME
    if isinstance(value, (bytes, bytearray)):
        return BYTESTRING
    if isinstance(value, uuid.UUID):
        return GUID
    if isinstance(value, LocalizedText):
        return LOCALIZEDTEXT
    if isinstance(value, (list, tuple)):
        for v in value:
            if v is not None:
                return infer_type(v)
        return VARIANT
    raise TypeError(f"cannot infer an OPC UA built-in type for {value!r}")


def iso_time(t=None):
    """An OPC UA JSON DateTime (Part 6 5.4.2.6): ISO 8601 in UTC with 'Z'. Accepts a datetime (naive = UTC), epoch
    seconds, or a string (passed through). None means now. Millisecond precision unless sub-millisecond digits."""
    if isinstance(t, str):
        return t
    if t is None:
        t = _dt.datetime.now(_dt.timezone.utc)
    elif isinstance(t, (int, float)):
        t = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    t = t.astimezone(_dt.timezone.utc)
    frac = f"{t.microsecond:06d}" if t.microsecond % 1000 else f"{t.microsecond // 1000:03d}"
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"


_EPOCH_2000 = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)


def version_time(t=None):
    """A VersionTime (OPC 10000-4): UInt32 seconds since 2000-01-01T00:00:00Z (now if t is None)."""
    if t is None:
        t = _dt.datetime.now(_dt.timezone.utc)
    elif isinstance(t, (int, float)):
        t = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return int((t - _EPOCH_2000).total_seconds()) & 0xFFFFFFFF


def encode_status(code, encoding=NON_REVERSIBLE):
    """A StatusCode per Part 6 (5.4.2.12 / H.4): a number (reversible), {"Code", "Symbol"} (non-reversible /
    verbose; Symbol left out when unknown) or {"Code"} (compact). Returns None for Good, which is not encoded
    outside arrays."""
    code = int(code) & 0xFFFFFFFF
    if code == GOOD:
        return None
    if encoding == REVERSIBLE:
        return code
    out = {"Code": code}
    sym = status_symbol(code)
    if encoding == NON_REVERSIBLE and sym is not None:
        out["Symbol"] = sym
    return out


def _number(v, t):
    if t in (INT64, UINT64):
        return str(int(v))  # Part 6: 64-bit integers are JSON strings
    if t in (FLOAT, DOUBLE):
        v = float(v)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    return int(v)


def _scalar(v, t, encoding):
    """A scalar of built-in type t as its JSON value (Part 6 5.4.2)."""
    if v is None:
        return None
    if t == BOOLEAN:
        return bool(v)
    if SBYTE <= t <= DOUBLE:
        return _number(v, t)
    if t == DATETIME:
        return iso_time(v)
    if t == BYTESTRING:
        return base64.b64encode(bytes(v)).decode() if isinstance(v, (bytes, bytearray)) else v
    if t == GUID:
        return str(v)
    if t == STATUSCODE:
        # StatusCode *values* inside a Variant: the same rules as elsewhere, but Good is still a value here.
        enc = encode_status(v, encoding)
        if enc is None:
            return 0 if encoding == REVERSIBLE else {}
        return enc
    if t == LOCALIZEDTEXT and isinstance(v, LocalizedText):
        if encoding == NON_REVERSIBLE:
            return v.text
        return {k: x for k, x in (("Locale", v.locale), ("Text", v.text)) if x is not None}
    if t == LOCALIZEDTEXT and isinstance(v, str):
        return v if encoding == NON_REVERSIBLE else {"Text": v}
    return v  # String, XmlElement, and anything the caller pre-encoded (NodeId strings, structures as dicts)


def _body(value, t, encoding):
    if isinstance(value, (list, tuple)):
        return [None if x is None else _scalar(x.value if isinstance(x, Variant) else x, t, encoding) for x in value]
    return _scalar(value, t, encoding)


def encode_variant(value, encoding=NON_REVERSIBLE):
    """A DataSet field given as a Variant (plain value or Variant):
    non-reversible -> the bare JSON value; reversible -> {"Type": id, "Body": v}; compact -> {"UaType": id,
    "Value": v}. A None value is JSON null. One-dimensional arrays only (no Dimensions)."""
    if isinstance(value, Variant):
        v, t = value.value, value.type
    else:
        v, t = value, infer_type(value)
    if v is None:
        return None
    body = _body(v, t, encoding)
    if encoding == REVERSIBLE:
        return {"Type": t, "Body": body}
    if encoding == COMPACT:
        return {"UaType": t, "Value": body}
    return body


def encode_datavalue(dv, encoding=NON_REVERSIBLE):
    """A DataSet field given as a DataValue (Part 6 5.4.2.18): Value (a Variant in the chosen encoding; flattened
    into UaType/Value for compact), Status (left out when Good), SourceTimestamp, ServerTimestamp, picoseconds."""
    out = {}
    if dv.value is not None:
        var = Variant(dv.value, dv.type) if dv.type is not None else dv.value
        if encoding == COMPACT:
            out.update(encode_variant(var, COMPACT))
        else:
            out["Value"] = encode_variant(var, encoding)
    if dv.status is not None:
        st = encode_status(dv.status, encoding)
        if st is not None:
            out["Status"] = st
    if dv.source_timestamp is not None:
        out["SourceTimestamp"] = iso_time(dv.source_timestamp)
    if dv.source_picoseconds:
        out["SourcePicoseconds"] = int(dv.source_picoseconds)
    if dv.server_timestamp is not None:
        out["ServerTimestamp"] = iso_time(dv.server_timestamp)
    if dv.server_picoseconds:
        out["ServerPicoseconds"] = int(dv.server_picoseconds)
    return out


def encode_field(value, encoding=NON_REVERSIBLE):
    """One Payload entry: a DataValue object if `value` is a DataValue, otherwise a Variant."""
    if isinstance(value, DataValue):
        return encode_datavalue(value, encoding)
    return encode_variant(value, encoding)


def _version(v):
    if isinstance(v, dict):
        return {"MajorVersion": int(v["MajorVersion"]), "MinorVersion": int(v["MinorVersion"])}
    major, minor = v
    return {"MajorVersion": int(major), "MinorVersion": int(minor)}


# ---------------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------------
KEYFRAME, DELTAFRAME, EVENT, KEEPALIVE = "ua-keyframe", "ua-deltaframe", "ua-event", "ua-keepalive"


def dataset_message(writer_id, fields, sequence_number, timestamp=None, status=None, metadata_version=None,
                    writer_name=None, *, message_type=KEYFRAME, reversible=False, compact=False,
                    minor_version=None, publisher_id=None, writer_group_name=None):
    """A JSON DataSetMessage (Part 14 7.2.5.4) as a dict.

    writer_id        DataSetWriterId (UInt16; pass a str to imitate the 1.04 String form). OMIT leaves it out.
    fields           {field name: value}; values are plain Python values / Variant (-> Variant encoding) or
                     DataValue. Ignored (no Payload) for message_type "ua-keepalive".
    sequence_number  SequenceNumber (UInt32, wrapped); None leaves it out.
    timestamp        DataSetMessage Timestamp; None = now, OMIT = leave out.
    status           overall Status (StatusCode); None = leave out (Good is also left out, per Part 6).
    metadata_version (major, minor) or {"MajorVersion", "MinorVersion"} -> MetaDataVersion; None = leave out.
    minor_version    the 1.05.03+ MinorVersion header field (alternative to MetaDataVersion); None = leave out.
    writer_name      DataSetWriterName; None = leave out.
    publisher_id / writer_group_name  only for messages sent without a NetworkMessage header.
    message_type     "ua-keyframe" (default), "ua-deltaframe", "ua-event", "ua-keepalive"; OMIT = leave out.
    reversible / compact  the field (and Status) encoding flags, see the module docstring.
    """
    enc = _encoding(reversible, compact)
    m = {}
    if writer_id is not OMIT and writer_id is not None:
        m["DataSetWriterId"] = writer_id
    if writer_name is not None:
        m["DataSetWriterName"] = writer_name
    if publisher_id is not None:
        m["PublisherId"] = publisher_id if isinstance(publisher_id, str) else str(publisher_id)
    if writer_group_name is not None:
        m["WriterGroupName"] = writer_group_name
    if sequence_number is not None and sequence_number is not OMIT:
        m["SequenceNumber"] = int(sequence_number) & 0xFFFFFFFF
    if metadata_version is not None:
        m["MetaDataVersion"] = _version(metadata_version)
    if minor_version is not None:
        m["MinorVersion"] = int(minor_version)
    if timestamp is not OMIT:
        m["Timestamp"] = iso_time(timestamp)
    if status is not None:
        st = encode_status(status, enc)
        if st is not None:
            m["Status"] = st
    if message_type is not OMIT and message_type is not None:
        m["MessageType"] = message_type
    if message_type != KEEPALIVE and fields is not None:
        m["Payload"] = {name: encode_field(v, enc) for name, v in fields.items()}
    return m


def network_message(publisher_id, writer_group_name, messages, message_id=None, *, dataset_class_id=None):
    """A JSON NetworkMessage (Part 14 7.2.5.3) as a dict: MessageId (a fresh Guid string unless given),
    MessageType "ua-data", PublisherId (a UInteger becomes its decimal string, per the spec), WriterGroupName
    (1.05; None leaves it out), optional DataSetClassId, and Messages (a list of DataSetMessage dicts; a single
    dict is wrapped)."""
    if isinstance(messages, dict):
        messages = [messages]
    m = {"MessageId": message_id or str(uuid.uuid4()), "MessageType": "ua-data"}
    if publisher_id is not None:
        m["PublisherId"] = publisher_id if isinstance(publisher_id, str) else str(publisher_id)
    if writer_group_name is not None:
        m["WriterGroupName"] = writer_group_name
    if dataset_class_id is not None:
        m["DataSetClassId"] = str(dataset_class_id)
    m["Messages"] = list(messages)
    return m


def field_id(publisher_id, writer, name):
    """A stable DataSetFieldId (Guid) for a field, so repeated runs describe the same field the same way."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opcua-pubsub:{publisher_id}/{writer}/{name}"))


def field_metadata(name, builtin_type, *, value_rank=-1, data_type=None, description=None, field_id_=None,
                   reversible=False, max_string_length=0, array_dimensions=None, field_flags=0):
    """A FieldMetaData (Part 14 6.2.3.2.4). DataType is the NodeId of the DataType (ns=0 built-in ids here):
    "i=<id>" (1.05.04+ string NodeId) or, with reversible=True, the older JSON object form {"Id": <id>}."""
    bt = _type_id(builtin_type)
    dt = bt if data_type is None else data_type
    if isinstance(dt, int):
        dt = {"Id": dt} if reversible else f"i={dt}"
    f = {"Name": name}
    if description is not None:
        f["Description"] = {"Text": description} if reversible else description
    f.update({"FieldFlags": field_flags, "BuiltInType": bt, "DataType": dt, "ValueRank": value_rank})
    if array_dimensions is not None:
        f["ArrayDimensions"] = list(array_dimensions)
    f["MaxStringLength"] = max_string_length
    f["DataSetFieldId"] = field_id_ or str(uuid.uuid4())
    return f


def metadata_message(publisher_id, writer_id, name, fields, *, writer_group_name=None, writer_name=None,
                     version=None, timestamp=None, message_id=None, description=None, reversible=False,
                     dataset_class_id=None):
    """A JSON DataSetMetaData message (MessageType "ua-metadata", Part 14 7.2.5.5.2) as a dict.

    fields: a list of (name, built-in type id or name) tuples, (name, type, value_rank) tuples, dicts with
    "Name" + "BuiltInType" (+ optional "ValueRank", "DataType", "DataSetFieldId", "Description"), or already built
    FieldMetaData dicts (anything with "DataSetFieldId" is passed through unchanged).
    version: (major, minor) VersionTimes; None = version_time() for both."""
    out_fields = []
    for f in fields:
        if isinstance(f, dict) and "DataSetFieldId" in f and "FieldFlags" in f:
            out_fields.append(f)
            continue
        if isinstance(f, dict):
            fname, bt = f["Name"], f.get("BuiltInType", f.get("Type"))
            vr, dtype, desc = f.get("ValueRank", -1), f.get("DataType"), f.get("Description")
            fid = f.get("DataSetFieldId")
        else:
            fname, bt, vr = (tuple(f) + (-1,))[:3]
            dtype = desc = fid = None
        out_fields.append(field_metadata(fname, bt, value_rank=vr, data_type=dtype, description=desc,
                                         field_id_=fid or field_id(publisher_id, writer_id, fname),
                                         reversible=reversible))
    if version is None:
        v = version_time()
        version = (v, v)
    meta = {"Name": name}
    if description is not None:
        meta["Description"] = {"Text": description} if reversible else description
    meta["Fields"] = out_fields
    if dataset_class_id is not None:
        meta["DataSetClassId"] = str(dataset_class_id)
    meta["ConfigurationVersion"] = _version(version)
    m = {"MessageId": message_id or str(uuid.uuid4()), "MessageType": "ua-metadata",
         "PublisherId": publisher_id if isinstance(publisher_id, str) else str(publisher_id),
         "DataSetWriterId": writer_id}
    if writer_group_name is not None:
        m["WriterGroupName"] = writer_group_name
    if writer_name is not None:
        m["DataSetWriterName"] = writer_name
    if timestamp is not OMIT:
        m["Timestamp"] = iso_time(timestamp)
    m["MetaData"] = meta
    return m


def encode(message):
    """The MQTT payload bytes of a message dict (compact UTF-8 JSON; NaN etc. are already strings)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Topics (Part 14 7.3.5.7)
# ---------------------------------------------------------------------------------------------------------------
TOPIC_PREFIX = "opcua/json"  # <Prefix>/<Encoding> with the default prefix "opcua" and the JSON encoding


def _level(x, what):
    s = str(x)
    if not s or any(c in s for c in "/+#"):
        raise ValueError(f"{what} {s!r} cannot be an MQTT topic level")
    return s


def data_topic(publisher_id, writer_group, writer=None, topic_prefix=TOPIC_PREFIX):
    """<Prefix>/<Encoding>/data/<PublisherId>/<WriterGroup>[/<DataSetWriter>] (7.3.5.7.3); RETAIN false."""
    t = f"{topic_prefix}/data/{_level(publisher_id, 'PublisherId')}/{_level(writer_group, 'WriterGroup')}"
    return t if writer is None else f"{t}/{_level(writer, 'DataSetWriter')}"


def metadata_topic(publisher_id, writer_group, writer, topic_prefix=TOPIC_PREFIX):
    """<Prefix>/<Encoding>/metadata/<PublisherId>/<WriterGroup>/<DataSetWriter> (7.3.5.7.4); RETAIN true."""
    return (f"{topic_prefix}/metadata/{_level(publisher_id, 'PublisherId')}/{_level(writer_group, 'WriterGroup')}"
            f"/{_level(writer, 'DataSetWriter')}")


# ---------------------------------------------------------------------------------------------------------------
# Publisher
# ---------------------------------------------------------------------------------------------------------------
class _Writers:
    """DataSetWriter bookkeeping without a broker: name <-> DataSetWriterId, per-writer SequenceNumber and
    ConfigurationVersion."""

    def __init__(self, version):
        self.ids, self.seq, self.versions, self.default_version = {}, {}, {}, version

    def resolve(self, writer, writer_id=None):
        """(name, id): a str writer is a DataSetWriter name with an id assigned 1, 2, ... on first use (or
        writer_id); an int writer is the id and its decimal string the name."""
        if isinstance(writer, int) and not isinstance(writer, bool):
            name, wid = str(writer), writer if writer_id is None else writer_id
        else:
            name = str(writer)
            if writer_id is not None:
                wid = writer_id
            elif name in self.ids:
                wid = self.ids[name]
            else:
                wid = max(self.ids.values(), default=0) + 1
        self.ids[name] = wid
        return name, wid

    def next_seq(self, wid, seq=None, advance=True):
        """The SequenceNumber to send: `seq` if given (the counter then continues from it), else the running
        counter (starting at 1); advance=False for keep-alives (which carry the next expected number)."""
        s = self.seq.get(wid, 1) if seq is None else int(seq) & 0xFFFFFFFF
        self.seq[wid] = (s + 1) & 0xFFFFFFFF if advance else s
        return s

    def version(self, wid):
        return self.versions.get(wid, self.default_version)


class Publisher:
    """A PubSub Publisher (one PubSubConnection with one WriterGroup) on a real MQTT broker.

    Publishes with QoS 1 and waits for each publish to complete (PUBACK). DataSetWriters are named by the
    `writer` argument (the topic's <DataSetWriter> level and DataSetWriterName); their DataSetWriterIds are
    assigned 1, 2, ... in order of first use unless given (writer_id=) or unless `writer` is an int."""

    def __init__(self, port, publisher_id, group, host="127.0.0.1", *, topic_prefix=TOPIC_PREFIX, client_id=None,
                 reversible=False, compact=False, timeout=10):
        import paho.mqtt.client as mqtt  # imported here so the message builders work without paho
        self.publisher_id, self.group, self.topic_prefix, self.timeout = publisher_id, group, topic_prefix, timeout
        self.encoding = _encoding(reversible, compact)
        v = version_time()
        self.writers = _Writers((v, v))
        self.sent = []  # (topic, message dict or raw bytes) of everything published, for assertions
        # A CONNACK that never comes (seen once on a loaded 2-core CI machine: no on_connect within 10 s) is
        # retried with a fresh client rather than failing the test; a refused connection fails at once.
        for attempt in range(3):
            self._connected = threading.Event()
            self._rc = None
            self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                 client_id=client_id or f"opcua-pub-{publisher_id}-{uuid.uuid4().hex[:8]}")
            self.c.on_connect = self._on_connect
            self.c.connect_async(host, port)
            self.c.loop_start()
            if self._connected.wait(timeout) and self._rc is not None and not self._rc.is_failure:
                return
            self.close()
            if self._rc is not None:
                break
        raise ConnectionError(f"MQTT connect to {host}:{port} failed: {self._rc}")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self._rc = reason_code
        self._connected.set()

    def _flags(self, reversible, compact):
        if reversible is None and compact is None:
            return self.encoding == REVERSIBLE, self.encoding == COMPACT
        return bool(reversible), bool(compact)

    def _publish(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=self.timeout)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic} did not complete (rc={info.rc})")

    def data_topic(self, writer=None):
        return data_topic(self.publisher_id, self.group, writer, self.topic_prefix)

    def metadata_topic(self, writer):
        return metadata_topic(self.publisher_id, self.group, writer, self.topic_prefix)

    def publish_data(self, writer, fields, seq=None, *, timestamp=None, status=None, message_type=KEYFRAME,
                     writer_id=None, reversible=None, compact=None, metadata_version=True, network_header=True,
                     topic=None, retain=False, message_id=None):
        """Publish one DataSetMessage for `writer` in a ua-data NetworkMessage to the data topic
        .../data/<PublisherId>/<WriterGroup>/<writer>. SequenceNumber auto-increments per writer unless `seq`
        is given (seq=OMIT leaves it out). metadata_version=True sends the writer's current ConfigurationVersion
        (set by publish_metadata), a (major, minor) pair sends that, None leaves it out. network_header=False
        sends the bare DataSetMessage (with PublisherId and WriterGroupName in it) instead. Returns the dict."""
        name, wid = self.writers.resolve(writer, writer_id)
        if seq is OMIT:
            s = None
        else:
            s = self.writers.next_seq(wid, seq, advance=message_type != KEEPALIVE)
        mv = self.writers.version(wid) if metadata_version is True else metadata_version
        rev, comp = self._flags(reversible, compact)
        dsm = dataset_message(wid, fields, s, timestamp=timestamp, status=status, metadata_version=mv,
                              writer_name=name, message_type=message_type, reversible=rev, compact=comp,
                              publisher_id=None if network_header else self.publisher_id,
                              writer_group_name=None if network_header else self.group)
        msg = network_message(self.publisher_id, self.group, [dsm], message_id) if network_header else dsm
        t = topic or self.data_topic(name)
        self._publish(t, encode(msg), retain=retain)
        self.sent.append((t, msg))
        return msg

    def publish_keepalive(self, writer, **kw):
        """A ua-keepalive DataSetMessage (no Payload; SequenceNumber = the next expected one)."""
        return self.publish_data(writer, None, message_type=KEEPALIVE, **kw)

    def publish_metadata(self, writer, fields, name=None, *, version=None, writer_id=None, reversible=None,
                         retain=True, topic=None, message_id=None):
        """Publish the DataSetMetaData (ua-metadata, RETAIN per Part 14 Table 178) for `writer` to
        .../metadata/<PublisherId>/<WriterGroup>/<writer>. `fields` as for metadata_message; `name` is the
        DataSet name (default: the writer name); `version` (major, minor) becomes the writer's current
        ConfigurationVersion (default: keep the current one). Returns the dict."""
        wname, wid = self.writers.resolve(writer, writer_id)
        if version is not None:
            self.writers.versions[wid] = tuple(version)
        rev = self.encoding == REVERSIBLE if reversible is None else reversible
        msg = metadata_message(self.publisher_id, wid, name or wname, fields, writer_group_name=self.group,
                               writer_name=wname, version=self.writers.version(wid), reversible=rev,
                               message_id=message_id)
        t = topic or self.metadata_topic(wname)
        self._publish(t, encode(msg), retain=retain)
        self.sent.append((t, msg))
        return msg

    def publish_raw(self, topic, payload, qos=1, retain=False):
        """Publish arbitrary bytes (str is UTF-8 encoded) -- for malformed-message tests."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self._publish(topic, payload, qos=qos, retain=retain)
        self.sent.append((topic, payload))

    def clear_retained(self, writer):
        """Remove the retained metadata of `writer` from the broker (an empty retained message)."""
        self._publish(self.metadata_topic(self.writers.resolve(writer)[0]), b"", retain=True)

    def close(self):
        try:
            self.c.loop_stop()
            self.c.disconnect()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------------------------
# Self-check (no broker needed): python3 opcua_pubsub.py
# ---------------------------------------------------------------------------------------------------------------
if __name__ == "__main__":
    T = "2026-01-02T03:04:05.678Z"
    fields = {
        "Temperature": 21.5,
        "Flow": DataValue(3.25, status=UNCERTAIN_LAST_USABLE_VALUE, source_timestamp=T),
    }

    def show(title, msg):
        print(f"--- {title}")
        print(json.dumps(msg, indent=2))

    for label, kw in (("non-reversible (default)", {}), ("reversible", {"reversible": True}),
                      ("compact (1.05.04+)", {"compact": True})):
        dsm = dataset_message(1, fields, 7, timestamp=T, metadata_version=(1000, 1001), writer_name="pump1", **kw)
        show(f"ua-data, {label}", network_message("gw1", "line1", [dsm], message_id="msg-1"))

    p = network_message("gw1", "line1", [dataset_message(1, fields, 7, timestamp=T)])["Messages"][0]["Payload"]
    assert p["Temperature"] == 21.5
    assert p["Flow"] == {"Value": 3.25, "Status": {"Code": 0x40900000, "Symbol": "UncertainLastUsableValue"},
                         "SourceTimestamp": T}
    r = dataset_message(1, fields, 7, timestamp=T, status=BAD_COMMUNICATION_ERROR, reversible=True)
    assert r["Payload"]["Temperature"] == {"Type": 11, "Body": 21.5}
    assert r["Payload"]["Flow"] == {"Value": {"Type": 11, "Body": 3.25}, "Status": 0x40900000, "SourceTimestamp": T}
    assert r["Status"] == 0x80050000
    c = dataset_message(1, fields, 7, timestamp=T, compact=True)
    assert c["Payload"]["Flow"] == {"UaType": 11, "Value": 3.25, "Status": {"Code": 0x40900000},
                                    "SourceTimestamp": T}

    # status codes
    assert encode_status(GOOD) is None and encode_status(GOOD, REVERSIBLE) is None
    assert encode_status(BAD_COMMUNICATION_ERROR) == {"Code": 2147811328, "Symbol": "BadCommunicationError"}
    assert encode_status(BAD_COMMUNICATION_ERROR | 0x0400) == {"Code": 2147812352, "Symbol": "BadCommunicationError"}
    assert encode_status(0x80AB0000) == {"Code": 0x80AB0000}  # unknown here -> no Symbol
    assert [severity(x) for x in (GOOD, UNCERTAIN_LAST_USABLE_VALUE, BAD_COMMUNICATION_ERROR)] == \
        ["Good", "Uncertain", "Bad"]
    dv_bad = encode_datavalue(DataValue(None, status=BAD_COMMUNICATION_ERROR, source_timestamp=T))
    assert dv_bad == {"Status": {"Code": 0x80050000, "Symbol": "BadCommunicationError"}, "SourceTimestamp": T}

    # scalars per Part 6
    assert encode_variant(2**40) == "1099511627776" and encode_variant(Variant(5, "UInt64")) == "5"
    assert encode_variant(float("nan")) == "NaN" and encode_variant(Variant(float("-inf"), "Float")) == "-Infinity"
    assert encode_variant(Variant(1.5, "Float"), REVERSIBLE) == {"Type": 10, "Body": 1.5}
    assert encode_variant([1, 2, 3], REVERSIBLE) == {"Type": 6, "Body": [1, 2, 3]}
    assert encode_variant(b"\x00\x01\x02") == "AAEC"
    assert encode_variant(_dt.datetime(2026, 1, 2, 3, 4, 5, 678000)) == T
    assert encode_variant(None) is None

    # keep-alive and header-less forms
    ka = dataset_message(3, {"x": 1}, 42, timestamp=T, message_type=KEEPALIVE)
    assert "Payload" not in ka and ka["SequenceNumber"] == 42 and ka["MessageType"] == "ua-keepalive"
    bare = dataset_message(3, {"x": 1}, 1, timestamp=OMIT, publisher_id=17, writer_group_name="g")
    assert bare["PublisherId"] == "17" and "Timestamp" not in bare
    assert network_message(4711, None, bare)["PublisherId"] == "4711"

    # topics
    assert data_topic("gw1", "line1", "pump1") == "opcua/json/data/gw1/line1/pump1"
    assert metadata_topic("gw1", "line1", "pump1") == "opcua/json/metadata/gw1/line1/pump1"
    assert data_topic("gw1", "line1", "pump1", topic_prefix="site/opcua/json") == \
        "site/opcua/json/data/gw1/line1/pump1"
    try:
        data_topic("gw/1", "line1")
        raise AssertionError("a '/' in a topic level must be refused")
    except ValueError:
        pass

    # writer bookkeeping (what Publisher uses), without a broker
    w = _Writers((1, 2))
    assert w.resolve("pump1") == ("pump1", 1) and w.resolve("pump2") == ("pump2", 2)
    assert w.resolve("pump1") == ("pump1", 1) and w.resolve(7) == ("7", 7)
    assert [w.next_seq(1) for _ in range(3)] == [1, 2, 3]
    assert w.next_seq(1, 10) == 10 and w.next_seq(1) == 11
    assert w.next_seq(1, advance=False) == 12 and w.next_seq(1) == 12
    assert w.next_seq(2, 0xFFFFFFFF) == 0xFFFFFFFF and w.next_seq(2) == 0

    md = metadata_message("gw1", 1, "pump1", [("Temperature", "Double"), ("Flow", DOUBLE), ("Running", "Boolean")],
                          writer_group_name="line1", writer_name="pump1", version=(1000, 1001), timestamp=T,
                          message_id="md-1")
    show("ua-metadata", md)
    assert md["MetaData"]["Fields"][0]["DataType"] == "i=11" and md["MetaData"]["Fields"][2]["BuiltInType"] == 1
    assert md["MetaData"]["Fields"][0]["DataSetFieldId"] == field_id("gw1", 1, "Temperature")
    mdr = metadata_message("gw1", 1, "pump1", [("Temperature", "Double")], reversible=True, version=(1, 1))
    assert mdr["MetaData"]["Fields"][0]["DataType"] == {"Id": 11}
    json.loads(encode(md))
    print("--- MQTT payload bytes:", encode(network_message("gw1", "line1", [dataset_message(
        1, fields, 7, timestamp=T)], message_id="msg-1"))[:120], "...")
    print("self-check OK")
