"""A strict DynamoDB: checks each request against DynamoDB's documented limits.

moto accepts requests that DynamoDB rejects (a 26-item batch, a duplicate key in a batch, a
reserved word used bare in an expression, a consistent read on a global secondary index...).
`check(operation, params, schemas)` returns the reasons DynamoDB would reject a request, as
strings; `StrictChecker` hooks it into botocore clients ('provide-client-params') so every
request the project makes in a test is checked before it leaves, and records each call so
tests can also check the device's IAM policy against what the project really does. The
fault proxy (tests/faultproxy.py) runs the same check on the wire for subprocess tests.

Sources: the DynamoDB Developer Guide ("Service, account, and table quotas", "Supported data
types and naming rules", "Reserved words", "Expressions") and the API reference of each
operation. Where the guide is vague the check errs on the strict side.
"""

import base64
import decimal
import re

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")  # table and index names
PLACEHOLDER_NAME_RE = re.compile(r"^#[A-Za-z0-9_]+$")
PLACEHOLDER_VALUE_RE = re.compile(r"^:[A-Za-z0-9_]+$")
MAX_ITEM_BYTES = 400 * 1024
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_KEY_ATTRIBUTE_NAME_BYTES = 255
MAX_ATTRIBUTE_NAME_BYTES = 65535
MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_NUMBER_DIGITS = 38
MAX_GSI = 20
MAX_EXPRESSION_BYTES = 4096
EXACT = decimal.Context(prec=1000)  # the default 28 digits would round what we count
SYNTAX_WORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}
FUNCTIONS = {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with",
             "contains", "size", "if_not_exists", "list_append"}

# DynamoDB's reserved words (Developer Guide, "Reserved words in DynamoDB"): all 573 of them.
# An expression must name an attribute with one of these through ExpressionAttributeNames.
RESERVED_WORDS = frozenset("""
    ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE
    ARE ARRAY AS ASC ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH
    AUTHORIZATION AUTHORIZE AUTO AVG BACK BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY
    BIT BLOB BLOCK BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE CALL CALLED CALLING CAPACITY CASCADE
    CASCADED CASE CAST CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER CLUSTERED
    CLUSTERING CLUSTERS COALESCE COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT
    COMMIT COMPACT COMPILE COMPRESS CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY CONSISTENT
    CONSTRAINT CONSTRAINTS CONSTRUCTOR CONSUMED CONTINUE CONVERT COPY CORRESPONDING COUNT
    COUNTER CREATE CROSS CUBE CURRENT CURSOR CYCLE DATA DATABASE DATE DATETIME DAY DEALLOCATE
    DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEFINE DEFINED DEFINITION DELETE DELIMITED
    DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH DETERMINISTIC DIAGNOSTICS DIRECTORIES DISABLE
    DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE DROP DUMP DURATION DYNAMIC EACH ELEMENT ELSE
    ELSEIF EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE ESCAPED EVAL EVALUATE EXCEEDED EXCEPT
    EXCEPTION EXCEPTIONS EXCLUSIVE EXEC EXECUTE EXISTS EXIT EXPLAIN EXPLODE EXPORT EXPRESSION
    EXTENDED EXTERNAL EXTRACT FAIL FALSE FAMILY FETCH FIELDS FILE FILTER FILTERING FINAL FINISH
    FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT FORWARD FOUND FREE FROM FULL FUNCTION
    FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER GROUP GROUPING HANDLER HASH
    HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE IMMEDIATE IMPORT IN
    INCLUDING INCLUSIVE INCREMENT INCREMENTAL INDEX INDEXED INDEXES INDICATOR INFINITE INITIALLY
    INLINE INNER INNTER INOUT INPUT INSENSITIVE INSERT INSTEAD INT INTEGER INTERSECT INTERVAL
    INTO INVALIDATE IS ISOLATION ITEM ITEMS ITERATE JOIN KEY KEYS LAG LANGUAGE LARGE LAST
    LATERAL LEAD LEADING LEAVE LEFT LENGTH LESS LEVEL LIKE LIMIT LIMITED LINES LIST LOAD LOCAL
    LOCALTIME LOCALTIMESTAMP LOCATION LOCATOR LOCK LOCKS LOG LOGED LONG LOOP LOWER MAP MATCH
    MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD METRICS MIN MINUS MINUTE MISSING MOD MODE
    MODIFIES MODIFY MODULE MONTH MULTI MULTISET NAME NAMES NATIONAL NATURAL NCHAR NCLOB NEW NEXT
    NO NONE NOT NULL NULLIF NUMBER NUMERIC OBJECT OF OFFLINE OFFSET OLD ON ONLINE ONLY OPAQUE
    OPEN OPERATOR OPTION OR ORDER ORDINALITY OTHER OTHERS OUT OUTER OUTPUT OVER OVERLAPS
    OVERRIDE OWNER PAD PARALLEL PARAMETER PARAMETERS PARTIAL PARTITION PARTITIONED PARTITIONS
    PATH PERCENT PERCENTILE PERMISSION PERMISSIONS PIPE PIPELINED PLAN POOL POSITION PRECISION
    PREPARE PRESERVE PRIMARY PRIOR PRIVATE PRIVILEGES PROCEDURE PROCESSED PROJECT PROJECTION
    PROPERTY PROVISIONING PUBLIC PUT QUERY QUIT QUORUM RAISE RANDOM RANGE RANK RAW READ READS
    REAL REBUILD RECORD RECURSIVE REDUCE REF REFERENCE REFERENCES REFERENCING REGEXP REGION
    REINDEX RELATIVE RELEASE REMAINDER RENAME REPEAT REPLACE REQUEST RESET RESIGNAL RESOURCE
    RESPONSE RESTORE RESTRICT RESULT RETURN RETURNING RETURNS REVERSE REVOKE RIGHT ROLE ROLES
    ROLLBACK ROLLUP ROUTINE ROW ROWS RULE RULES SAMPLE SATISFIES SAVE SAVEPOINT SCAN SCHEMA
    SCOPE SCROLL SEARCH SECOND SECTION SEGMENT SEGMENTS SELECT SELF SEMI SENSITIVE SEPARATE
    SEQUENCE SERIALIZABLE SESSION SET SETS SHARD SHARE SHARED SHORT SHOW SIGNAL SIMILAR SIZE
    SKEWED SMALLINT SNAPSHOT SOME SOURCE SPACE SPACES SPARSE SPECIFIC SPECIFICTYPE SPLIT SQL
    SQLCODE SQLERROR SQLEXCEPTION SQLSTATE SQLWARNING START STATE STATIC STATUS STORAGE STORE
    STORED STREAM STRING STRUCT STYLE SUB SUBMULTISET SUBPARTITION SUBSTRING SUBTYPE SUM SUPER
    SYMMETRIC SYNONYM SYSTEM TABLE TABLESAMPLE TEMP TEMPORARY TERMINATED TEXT THAN THEN
    THROUGHPUT TIME TIMESTAMP TIMEZONE TINYINT TO TOKEN TOTAL TOUCH TRAILING TRANSACTION
    TRANSFORM TRANSLATE TRANSLATION TREAT TRIGGER TRIM TRUE TRUNCATE TTL TUPLE TYPE UNDER UNDO
    UNION UNIQUE UNIT UNKNOWN UNLOGGED UNNEST UNPROCESSED UNSIGNED UNTIL UPDATE UPPER URL USAGE
    USE USER USERS USING UUID VACUUM VALUE VALUED VALUES VARCHAR VARIABLE VARIANCE VARINT
    VARYING VIEW VIEWS VIRTUAL VOID WAIT WHEN WHENEVER WHERE WHILE WINDOW WITH WITHIN WITHOUT
    WORK WRAPPED WRITE YEAR ZONE
""".split())


class StrictViolation(AssertionError):
    """A request that the real DynamoDB would reject (ValidationException and friends)."""


# --- table schemas -------------------------------------------------------------------------

class Schema:
    """Key attributes of a table and its indexes, from a CreateTable request's parameters."""

    def __init__(self, definition):
        self.name = definition["TableName"]
        self.types = {a["AttributeName"]: a["AttributeType"] for a in definition.get("AttributeDefinitions", [])}
        self.keys = _key_schema(definition["KeySchema"])
        self.indexes = {}
        self.projections = {}
        for index in definition.get("GlobalSecondaryIndexes", []) + definition.get("LocalSecondaryIndexes", []):
            self.indexes[index["IndexName"]] = _key_schema(index["KeySchema"])
            projection = index.get("Projection", {})
            self.projections[index["IndexName"]] = (
                projection.get("ProjectionType", "ALL"), set(projection.get("NonKeyAttributes", [])))
        self.global_indexes = {index["IndexName"] for index in definition.get("GlobalSecondaryIndexes", [])}

    def table_keys(self):
        return set(self.keys.values())

    def all_key_attributes(self):
        names = set(self.keys.values())
        for keys in self.indexes.values():
            names |= set(keys.values())
        return names

    def projected(self, index):
        """Attribute names an index holds, or None for ALL."""
        kind, extra = self.projections[index]
        if kind == "ALL":
            return None
        names = set(self.keys.values()) | set(self.indexes[index].values())
        return names | extra if kind == "INCLUDE" else names


def _key_schema(elements):
    return {element["KeyType"]: element["AttributeName"] for element in elements}


def project_schemas(prefix):
    """The schemas of the project's three tables (dynamo.table_definition)."""
    import dynamo

    return {name: Schema(dynamo.table_definition(name)) for name in dynamo.table_names(prefix).values()}


def legacy_project_schemas(prefix):
    """The schemas of tables made before markers of new hours, with status-index."""
    import dynamo

    return {name: Schema(dynamo.legacy_table_definition(name)) for name in dynamo.table_names(prefix).values()}


# --- attribute values -------------------------------------------------------------------------

def _utf8(text):
    return len(text.encode("utf-8"))


def _number_problem(raw):
    if not isinstance(raw, str) or not raw.strip():
        return f"number {raw!r} is not a numeric string"
    try:
        number = decimal.Decimal(raw)
    except decimal.InvalidOperation:
        return f"number {raw!r} is not a number"
    if not number.is_finite():
        return f"number {raw!r}: NaN and Infinity are not supported"
    if number == 0:
        return None
    digits = EXACT.normalize(number).as_tuple().digits
    if len(digits) > MAX_NUMBER_DIGITS:
        return f"number {raw!r} has {len(digits)} significant digits, more than {MAX_NUMBER_DIGITS}"
    magnitude = abs(number)
    if magnitude < decimal.Decimal("1E-130") or magnitude >= decimal.Decimal("1E126"):
        return f"number {raw!r} is outside DynamoDB's range (1E-130 to 9.99...E+125)"
    return None


def _number_size(raw):
    try:
        digits = EXACT.normalize(decimal.Decimal(raw)).as_tuple().digits
    except decimal.InvalidOperation:
        digits = raw
    return (len(digits) + 1) // 2 + 1


def _binary(raw):
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    return base64.b64decode(raw)  # the wire form


def value_problems(value, where):
    """Why an AttributeValue is invalid, as a list."""
    if not isinstance(value, dict) or len(value) != 1:
        return [f"{where}: an attribute value must have exactly one type, got {value!r}"]
    (kind, raw), = value.items()
    if kind == "S":
        return [] if isinstance(raw, str) else [f"{where}: S value {raw!r} is not a string"]
    if kind == "N":
        problem = _number_problem(raw)
        return [f"{where}: {problem}"] if problem else []
    if kind == "B":
        return []
    if kind == "BOOL":
        return [] if isinstance(raw, bool) else [f"{where}: BOOL value {raw!r} is not a boolean"]
    if kind == "NULL":
        return [] if raw is True else [f"{where}: NULL must be true, got {raw!r}"]
    if kind in ("SS", "NS", "BS"):
        if not isinstance(raw, list) or not raw:
            return [f"{where}: a set must not be empty"]
        problems = []
        if kind == "NS":
            problems += [f"{where}: {p}" for p in map(_number_problem, raw) if p]
            canonical = [EXACT.normalize(decimal.Decimal(x)) for x in raw if not _number_problem(x)]
        else:
            canonical = [_binary(x) for x in raw] if kind == "BS" else list(raw)
        if len(set(canonical)) != len(canonical):
            problems.append(f"{where}: a set contains duplicates")
        return problems
    if kind == "L":
        if not isinstance(raw, list):
            return [f"{where}: L value is not a list"]
        return [p for i, v in enumerate(raw) for p in value_problems(v, f"{where}[{i}]")]
    if kind == "M":
        if not isinstance(raw, dict):
            return [f"{where}: M value is not a map"]
        return [p for k, v in raw.items() for p in value_problems(v, f"{where}.{k}")]
    return [f"{where}: unknown attribute value type {kind!r}"]


def value_size(value):
    (kind, raw), = value.items()
    if kind == "S":
        return _utf8(raw)
    if kind == "N":
        return _number_size(raw)
    if kind == "B":
        return len(_binary(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(map(_utf8, raw))
    if kind == "NS":
        return sum(map(_number_size, raw))
    if kind == "BS":
        return sum(len(_binary(x)) for x in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + value_size(v) for k, v in raw.items())
    return 0


def item_size(item):
    """An item's size as DynamoDB counts it: names and values in UTF-8, numbers by digits."""
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


def _key_value_problems(schema, name, value, role, where):
    """A key attribute's value (table or index key): type, not empty, not too long."""
    problems = []
    wanted = schema.types.get(name)
    (kind, raw), = value.items()
    if wanted and kind != wanted:
        problems.append(f"{where}: key attribute {name} must be of type {wanted}, got {kind}")
        return problems
    if kind not in ("S", "N", "B"):
        return [f"{where}: key attribute {name} must be a scalar S, N or B"]
    size = value_size(value)
    if kind in ("S", "B") and size == 0:
        problems.append(f"{where}: key attribute {name} must not be an empty {kind}")
    limit = MAX_PARTITION_KEY_BYTES if role == "HASH" else MAX_SORT_KEY_BYTES
    if size > limit:
        problems.append(f"{where}: {role.lower()} key {name} is {size} bytes, more than {limit}")
    return problems


def item_problems(schema, item, where):
    """A whole item as PutItem or BatchWriteItem's PutRequest would store it."""
    if not isinstance(item, dict) or not item:
        return [f"{where}: the item is empty"]
    problems = []
    for name, value in item.items():
        if not name:
            problems.append(f"{where}: an attribute name is empty")
        elif _utf8(name) > MAX_ATTRIBUTE_NAME_BYTES:
            problems.append(f"{where}: attribute name {name[:40]!r}... is too long")
        problems += value_problems(value, f"{where}.{name}")
    if problems:
        return problems
    for role, name in schema.keys.items():
        if name not in item:
            problems.append(f"{where}: the item lacks its {role.lower()} key {name}")
        else:
            problems += _key_value_problems(schema, name, item[name], role, where)
    for index, keys in schema.indexes.items():
        for role, name in keys.items():
            if name in item:  # an item without an index key is simply not in the (sparse) index
                problems += [p.replace(where, f"{where} ({index})") for p in
                             _key_value_problems(schema, name, item[name], role, where)]
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        problems.append(f"{where}: the item is {size} bytes, more than {MAX_ITEM_BYTES}")
    return problems


def key_problems(schema, key, where):
    """A Key parameter: exactly the table's key attributes, valid values."""
    if not isinstance(key, dict):
        return [f"{where}: Key is not a map"]
    problems = []
    wanted = schema.table_keys()
    if set(key) != wanted:
        problems.append(f"{where}: Key must name exactly {sorted(wanted)}, got {sorted(key)}")
    for role, name in schema.keys.items():
        if name in key:
            problems += value_problems(key[name], f"{where}.{name}")
            if not problems:
                problems += _key_value_problems(schema, name, key[name], role, where)
    return problems


def key_of(schema, item):
    return tuple((name, repr(item.get(name))) for name in sorted(schema.table_keys()))


# --- expressions ------------------------------------------------------------------------------

TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<name_ref>\#[A-Za-z0-9_]+)
  | (?P<value_ref>:[A-Za-z0-9_]+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9]+)
  | (?P<op><>|<=|>=|[=<>(),.\[\]+-])
""", re.VERBOSE)


def tokenize(expression, where):
    """Tokens of an expression as (kind, text); raises StrictViolation on a stray character."""
    tokens, position = [], 0
    while position < len(expression):
        match = TOKEN_RE.match(expression, position)
        if not match:
            raise StrictViolation(f"{where}: invalid syntax at {expression[position:position + 20]!r}")
        position = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
    return tokens


class Expression:
    """One expression's names, values and bare words, for the checks common to all kinds."""

    def __init__(self, text, where):
        self.text, self.where = text, where
        self.tokens = tokenize(text, where)
        self.name_refs = {t for kind, t in self.tokens if kind == "name_ref"}
        self.value_refs = {t for kind, t in self.tokens if kind == "value_ref"}

    def bare_names(self, syntax=SYNTAX_WORDS):
        """Attribute names written without a placeholder (not functions or syntax words)."""
        names = []
        for i, (kind, text) in enumerate(self.tokens):
            if kind != "word":
                continue
            following = self.tokens[i + 1][1] if i + 1 < len(self.tokens) else ""
            if text in FUNCTIONS and following == "(":
                continue
            if text.upper() in syntax:
                continue
            names.append(text)
        return names

    def problems(self, syntax=SYNTAX_WORDS):
        problems = []
        if not self.text.strip():
            problems.append(f"{self.where}: the expression is empty")
        if _utf8(self.text) > MAX_EXPRESSION_BYTES:
            problems.append(f"{self.where}: the expression is longer than {MAX_EXPRESSION_BYTES} bytes")
        for name in self.bare_names(syntax):
            if name.upper() in RESERVED_WORDS:
                problems.append(
                    f"{self.where}: attribute name is a reserved keyword; reserved keyword: {name} "
                    "(use an ExpressionAttributeNames placeholder)")
        return problems


def split_top_level(tokens, separator=","):
    """Split tokens at `separator` outside parentheses and brackets."""
    parts, current, depth = [], [], 0
    for token in tokens:
        if token[1] in ("(", "["):
            depth += 1
        elif token[1] in (")", "]"):
            depth -= 1
        if depth == 0 and token[1] == separator:
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    return parts


def path_of(tokens, names, where):
    """A document path (list of names and [n]) from tokens, placeholders resolved."""
    path = []
    for kind, text in tokens:
        if kind == "name_ref":
            path.append(names.get(text, text))
        elif kind == "word":
            path.append(text)
        elif kind == "number":
            path.append(int(text))
        elif text in (".", "[", "]"):
            continue
        else:
            raise StrictViolation(f"{where}: {text!r} is not part of a document path")
    if not path:
        raise StrictViolation(f"{where}: an empty document path")
    return path


def _overlaps(a, b):
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def update_targets(expression, names, where):
    """{clause: [paths]} of an UpdateExpression; StrictViolation on malformed clauses."""
    clauses, current = {}, None
    for token in expression.tokens:
        if token[0] == "word" and token[1].upper() in ("SET", "REMOVE", "ADD", "DELETE"):
            current = token[1].upper()
            if current in clauses:
                raise StrictViolation(f"{where}: the {current} clause appears more than once")
            clauses[current] = []
            continue
        if current is None:
            raise StrictViolation(f"{where}: an update expression must start with SET, REMOVE, ADD or DELETE")
        clauses[current].append(token)
    targets = {}
    for clause, tokens in clauses.items():
        targets[clause] = []
        for action in split_top_level(tokens):
            if not action:
                raise StrictViolation(f"{where}: an empty action in {clause}")
            if clause == "SET":
                equals = [i for i, t in enumerate(action) if t[1] == "="]
                if not equals:
                    raise StrictViolation(f"{where}: SET action without '='")
                targets[clause].append(path_of(action[:equals[0]], names, where))
            elif clause == "REMOVE":
                targets[clause].append(path_of(action, names, where))
            else:  # ADD path :value / DELETE path :value
                if action[-1][0] != "value_ref":
                    raise StrictViolation(f"{where}: {clause} needs a path and a value")
                targets[clause].append(path_of(action[:-1], names, where))
    return targets


def key_conditions(expression, names, values, where):
    """[(attribute, operator, [values])] of a KeyConditionExpression."""
    tokens = expression.tokens
    conditions = []
    i, n = 0, len(tokens)

    def take(kind=None, text=None):
        nonlocal i
        if i >= n:
            raise StrictViolation(f"{where}: the key condition ends too early")
        token = tokens[i]
        if (kind and token[0] != kind) or (text and token[1].upper() != text):
            raise StrictViolation(f"{where}: unexpected {token[1]!r} in the key condition")
        i += 1
        return token

    def attribute(token):
        if token[0] == "name_ref":
            return names.get(token[1], token[1])
        if token[0] == "word":
            return token[1]
        raise StrictViolation(f"{where}: {token[1]!r} is not an attribute")

    while i < n:
        opened = 0
        while i < n and tokens[i][1] == "(":
            opened += 1
            i += 1
        token = take()
        if token[0] == "word" and token[1] == "begins_with":
            take(text="(")
            name = attribute(take())
            take(text=",")
            value = take(kind="value_ref")[1]
            take(text=")")
            conditions.append((name, "begins_with", [value]))
        else:
            name = attribute(token)
            operator = take()[1]
            if operator.upper() == "BETWEEN":
                low = take(kind="value_ref")[1]
                take(text="AND")
                high = take(kind="value_ref")[1]
                conditions.append((name, "BETWEEN", [low, high]))
            elif operator in ("=", "<", "<=", ">", ">="):
                conditions.append((name, operator, [take(kind="value_ref")[1]]))
            else:
                raise StrictViolation(f"{where}: invalid operator in the key condition: {operator!r}")
        for _ in range(opened):
            take(text=")")
        if i < n:
            take(text="AND")
    return conditions


# --- operations -------------------------------------------------------------------------------

def _names_and_values(params, expressions, where):
    """Checks shared by every operation with expressions: placeholders defined and used."""
    problems = []
    names = params.get("ExpressionAttributeNames")
    values = params.get("ExpressionAttributeValues")
    if names is not None and not names:
        problems.append(f"{where}: ExpressionAttributeNames must not be empty")
    if values is not None and not values:
        problems.append(f"{where}: ExpressionAttributeValues must not be empty")
    names, values = names or {}, values or {}
    used_names = set().union(*(e.name_refs for e in expressions)) if expressions else set()
    used_values = set().union(*(e.value_refs for e in expressions)) if expressions else set()
    for ref in sorted(used_names - set(names)):
        problems.append(f"{where}: an expression attribute name used in an expression is not defined: {ref}")
    for ref in sorted(used_values - set(values)):
        problems.append(f"{where}: an expression attribute value used in an expression is not defined: {ref}")
    for ref in sorted(set(names) - used_names):
        problems.append(f"{where}: Value provided in ExpressionAttributeNames unused in expressions: {ref}")
    for ref in sorted(set(values) - used_values):
        problems.append(f"{where}: Value provided in ExpressionAttributeValues unused in expressions: {ref}")
    for ref, name in names.items():
        if not PLACEHOLDER_NAME_RE.match(ref):
            problems.append(f"{where}: ExpressionAttributeNames key {ref!r} must be # and letters/digits/_")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: ExpressionAttributeNames {ref} maps to an empty name")
    for ref, value in values.items():
        if not PLACEHOLDER_VALUE_RE.match(ref):
            problems.append(f"{where}: ExpressionAttributeValues key {ref!r} must be : and letters/digits/_")
        problems += value_problems(value, f"{where} {ref}")
    return problems


LEGACY = {"KeyConditions", "AttributesToGet", "Expected", "AttributeUpdates", "ScanFilter",
          "QueryFilter", "ConditionalOperator"}


def _expressions(params, fields, where):
    problems, parsed = [], {}
    legacy = LEGACY & set(params)
    if legacy and any(field in params for field in fields):
        problems.append(f"{where}: legacy parameters {sorted(legacy)} can't be mixed with expressions")
    for field in fields:
        if field in params:
            try:
                parsed[field] = Expression(params[field], f"{where} {field}")
            except StrictViolation as error:
                problems.append(str(error))
                continue
            problems += parsed[field].problems(
                syntax=SYNTAX_WORDS if field == "UpdateExpression" else SYNTAX_WORDS - {"SET", "REMOVE", "ADD", "DELETE"})
    problems += _names_and_values(params, list(parsed.values()), where)
    return problems, parsed


def _table(params, schemas, where):
    table = params.get("TableName")
    problems = name_problems(table, "table", where)
    return problems, schemas.get(table)


def name_problems(name, what, where):
    if not isinstance(name, str) or not NAME_RE.match(name):
        return [f"{where}: {what} name {name!r} must be 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'"]
    return []


def check_create_table(params, schemas):
    where = "CreateTable"
    problems = name_problems(params.get("TableName"), "table", where)
    definitions = params.get("AttributeDefinitions", [])
    defined = {d["AttributeName"]: d["AttributeType"] for d in definitions}
    if len(defined) != len(definitions):
        problems.append(f"{where}: an attribute is defined twice")
    used = {k["AttributeName"] for k in params.get("KeySchema", [])}
    gsis = params.get("GlobalSecondaryIndexes", [])
    lsis = params.get("LocalSecondaryIndexes", [])
    if len(gsis) > MAX_GSI:
        problems.append(f"{where}: more than {MAX_GSI} global secondary indexes")
    for index in gsis + lsis:
        problems += name_problems(index.get("IndexName"), "index", where)
        used |= {k["AttributeName"] for k in index.get("KeySchema", [])}
        projection = index.get("Projection", {})
        if projection.get("ProjectionType") != "INCLUDE" and projection.get("NonKeyAttributes"):
            problems.append(f"{where}: NonKeyAttributes only go with ProjectionType INCLUDE")
        if params.get("BillingMode") == "PAY_PER_REQUEST" and "ProvisionedThroughput" in index:
            problems.append(f"{where}: an on-demand table's index takes no ProvisionedThroughput")
    if set(defined) != used:
        problems.append(f"{where}: AttributeDefinitions {sorted(defined)} must be exactly the key "
                        f"attributes of the table and its indexes {sorted(used)}")
    for name, kind in defined.items():
        if kind not in ("S", "N", "B"):
            problems.append(f"{where}: key attribute {name} has type {kind}, not S, N or B")
        if _utf8(name) > MAX_KEY_ATTRIBUTE_NAME_BYTES:
            problems.append(f"{where}: key attribute name {name[:40]!r} is longer than 255 bytes")
    if params.get("BillingMode") == "PAY_PER_REQUEST" and "ProvisionedThroughput" in params:
        problems.append(f"{where}: an on-demand table takes no ProvisionedThroughput")
    if params.get("BillingMode", "PROVISIONED") == "PROVISIONED" and "ProvisionedThroughput" not in params:
        problems.append(f"{where}: a provisioned table needs ProvisionedThroughput")
    if not problems:
        schemas[params["TableName"]] = Schema(params)
    return problems


def check_put_item(params, schemas):
    where = "PutItem"
    problems, schema = _table(params, schemas, where)
    more, _parsed = _expressions(params, ("ConditionExpression",), where)
    problems += more
    if params.get("ReturnValues", "NONE") not in ("NONE", "ALL_OLD"):
        problems.append(f"{where}: ReturnValues must be NONE or ALL_OLD")
    if schema:
        problems += item_problems(schema, params.get("Item"), where)
    return problems


def check_batch_write_item(params, schemas):
    where = "BatchWriteItem"
    request_items = params.get("RequestItems") or {}
    if not request_items:
        return [f"{where}: RequestItems must not be empty"]
    problems, total = [], 0
    for table, requests in request_items.items():
        problems += name_problems(table, "table", where)
        schema = schemas.get(table)
        if not requests:
            problems.append(f"{where}: the request list of {table} must not be empty")
        total += len(requests)
        seen = set()
        for i, request in enumerate(requests):
            spot = f"{where} {table}[{i}]"
            if not isinstance(request, dict) or len(request) != 1 or not set(request) <= {"PutRequest", "DeleteRequest"}:
                problems.append(f"{spot}: each request must be exactly one PutRequest or DeleteRequest")
                continue
            if "PutRequest" in request:
                body = request["PutRequest"].get("Item")
                if schema:
                    problems += item_problems(schema, body, spot)
            else:
                body = request["DeleteRequest"].get("Key")
                if schema:
                    problems += key_problems(schema, body, spot)
            if schema and isinstance(body, dict):
                key = key_of(schema, body)
                if key in seen:
                    problems.append(f"{spot}: Provided list of item keys contains duplicates {dict(key)}")
                seen.add(key)
    if total > MAX_BATCH_WRITE:
        problems.append(f"{where}: {total} requests, more than {MAX_BATCH_WRITE} in one BatchWriteItem")
    return problems


def check_update_item(params, schemas):
    where = "UpdateItem"
    problems, schema = _table(params, schemas, where)
    more, parsed = _expressions(params, ("UpdateExpression", "ConditionExpression"), where)
    problems += more
    if params.get("ReturnValues", "NONE") not in ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"):
        problems.append(f"{where}: invalid ReturnValues {params.get('ReturnValues')!r}")
    if schema is None:
        return problems
    problems += key_problems(schema, params.get("Key"), where)
    if "UpdateExpression" in parsed:
        names = params.get("ExpressionAttributeNames") or {}
        try:
            targets = update_targets(parsed["UpdateExpression"], names, where)
        except StrictViolation as error:
            return problems + [str(error)]
        paths = [path for clause in targets.values() for path in clause]
        for path in paths:
            if path[0] in schema.table_keys():
                problems.append(f"{where}: Cannot update attribute {path[0]}. This attribute is part of the key")
        for i, a in enumerate(paths):
            for b in paths[i + 1:]:
                if _overlaps(a, b):
                    problems.append(f"{where}: Two document paths overlap with each other: {a} and {b}")
    return problems


def check_query(params, schemas):
    where = "Query"
    problems, schema = _table(params, schemas, where)
    index = params.get("IndexName")
    if index is not None:
        problems += name_problems(index, "index", where)
    if "Limit" in params and (not isinstance(params["Limit"], int) or params["Limit"] < 1):
        problems.append(f"{where}: Limit must be at least 1, got {params['Limit']!r}")
    select = params.get("Select")
    if select not in (None, "ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT"):
        problems.append(f"{where}: invalid Select {select!r}")
    if select == "COUNT" and "ProjectionExpression" in params:
        problems.append(f"{where}: Select COUNT can't go with a ProjectionExpression")
    if select == "SPECIFIC_ATTRIBUTES" and "ProjectionExpression" not in params and "AttributesToGet" not in params:
        problems.append(f"{where}: Select SPECIFIC_ATTRIBUTES needs a ProjectionExpression")
    if select == "ALL_PROJECTED_ATTRIBUTES" and index is None:
        problems.append(f"{where}: ALL_PROJECTED_ATTRIBUTES needs an IndexName")
    if "KeyConditionExpression" not in params and "KeyConditions" not in params:
        problems.append(f"{where}: KeyConditionExpression is required")
    more, parsed = _expressions(
        params, ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"), where)
    problems += more
    if schema is None:
        return problems
    if index is not None and index not in schema.indexes:
        return problems + [f"{where}: table {schema.name} has no index {index}"]
    keys = schema.indexes[index] if index else schema.keys
    if index in schema.global_indexes:
        if params.get("ConsistentRead"):
            problems.append(f"{where}: Consistent reads are not supported on global secondary indexes ({index})")
        projected = schema.projected(index)
        if select == "ALL_ATTRIBUTES" and projected is not None:
            problems.append(f"{where}: Select ALL_ATTRIBUTES is not supported on {index}: its projection is not ALL")
        if projected is not None and "ProjectionExpression" in parsed:
            names = params.get("ExpressionAttributeNames") or {}
            for part in split_top_level(parsed["ProjectionExpression"].tokens):
                name = path_of(part, names, where)[0]
                if name not in projected:
                    problems.append(f"{where}: {name} is not projected into {index}")
    names = params.get("ExpressionAttributeNames") or {}
    values = params.get("ExpressionAttributeValues") or {}
    if "KeyConditionExpression" in parsed:
        try:
            conditions = key_conditions(parsed["KeyConditionExpression"], names, values, where)
        except StrictViolation as error:
            return problems + [str(error)]
        hash_conditions = [c for c in conditions if c[0] == keys["HASH"]]
        if len(hash_conditions) != 1 or hash_conditions[0][1] != "=":
            problems.append(f"{where}: the key condition needs exactly one equality on {keys['HASH']}")
        for name, operator, refs in conditions:
            if name not in keys.values():
                problems.append(f"{where}: Query key condition not supported: {name} is not a key of "
                                f"{index or schema.name}")
            elif name == keys.get("RANGE") and len([c for c in conditions if c[0] == name]) > 1:
                problems.append(f"{where}: more than one condition on the sort key {name}")
            for ref in refs:
                if ref in values:
                    role = "HASH" if name == keys["HASH"] else "RANGE"
                    problems += _key_value_problems(schema, name, values[ref], role, f"{where} {ref}")
    if "FilterExpression" in parsed:
        filter_names = set(parsed["FilterExpression"].bare_names(SYNTAX_WORDS - {"SET", "REMOVE", "ADD", "DELETE"}))
        filter_names |= {names.get(ref, ref) for ref in parsed["FilterExpression"].name_refs}
        for name in sorted(filter_names & set(keys.values())):
            problems.append(f"{where}: Filter Expression can only contain non-primary key attributes: {name}")
    return problems


def check_get_item(params, schemas):
    where = "GetItem"
    problems, schema = _table(params, schemas, where)
    more, _parsed = _expressions(params, ("ProjectionExpression",), where)
    problems += more
    if schema:
        problems += key_problems(schema, params.get("Key"), where)
    return problems


def check_delete_item(params, schemas):
    where = "DeleteItem"
    problems, schema = _table(params, schemas, where)
    more, _parsed = _expressions(params, ("ConditionExpression",), where)
    problems += more
    if schema:
        problems += key_problems(schema, params.get("Key"), where)
    return problems


def check_batch_get_item(params, schemas):
    where = "BatchGetItem"
    request_items = params.get("RequestItems") or {}
    if not request_items:
        return [f"{where}: RequestItems must not be empty"]
    problems, total = [], 0
    for table, request in request_items.items():
        problems += name_problems(table, "table", where)
        keys = request.get("Keys", [])
        total += len(keys)
        schema = schemas.get(table)
        seen = set()
        for i, key in enumerate(keys):
            if schema:
                problems += key_problems(schema, key, f"{where} {table}[{i}]")
                if key_of(schema, key) in seen:
                    problems.append(f"{where} {table}: Provided list of item keys contains duplicates")
                seen.add(key_of(schema, key))
    if total > MAX_BATCH_GET:
        problems.append(f"{where}: {total} keys, more than {MAX_BATCH_GET}")
    return problems


def check_table_only(operation):
    def check(params, schemas):
        return name_problems(params.get("TableName"), "table", operation)
    return check


def check_update_time_to_live(params, schemas):
    where = "UpdateTimeToLive"
    problems = name_problems(params.get("TableName"), "table", where)
    name = params.get("TimeToLiveSpecification", {}).get("AttributeName", "")
    if not 1 <= _utf8(name) <= 255:
        problems.append(f"{where}: the TTL attribute name must be 1-255 bytes")
    return problems


CHECKS = {
    "CreateTable": check_create_table,
    "PutItem": check_put_item,
    "BatchWriteItem": check_batch_write_item,
    "UpdateItem": check_update_item,
    "Query": check_query,
    "GetItem": check_get_item,
    "DeleteItem": check_delete_item,
    "BatchGetItem": check_batch_get_item,
    "DescribeTable": check_table_only("DescribeTable"),
    "DescribeTimeToLive": check_table_only("DescribeTimeToLive"),
    "UpdateTimeToLive": check_update_time_to_live,
    "DeleteTable": check_table_only("DeleteTable"),
}


def check(operation, params, schemas):
    """Why DynamoDB would reject this request (empty when it wouldn't, as far as we know).

    `schemas` maps table names to Schema; CreateTable requests add to it. Operations the
    checker doesn't know are reported too, so a new call in the project gets a look.
    """
    checker = CHECKS.get(operation)
    if checker is None:
        return [f"{operation}: not audited by tests/strict_dynamodb.py; add a check"]
    try:
        return checker(params, schemas)
    except StrictViolation as error:
        return [str(error)]
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        return [f"{operation}: malformed request ({type(error).__name__}: {error})"]


def request_size(params):
    import json

    return len(json.dumps(params, default=str).encode("utf-8"))


# --- leading keys (for the IAM policy tests) ---------------------------------------------------

def iam_match(pattern, value):
    """IAM's StringLike and ARN matching: * any run of characters (also '/'), ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def leading_keys(operation, params, schemas):
    """The partition key values IAM's dynamodb:LeadingKeys sees for a data request, or None."""
    if operation in ("PutItem",):
        schema = schemas[params["TableName"]]
        return {params["Item"][schema.keys["HASH"]]["S"]}
    if operation in ("UpdateItem", "GetItem", "DeleteItem"):
        schema = schemas[params["TableName"]]
        return {params["Key"][schema.keys["HASH"]]["S"]}
    if operation == "BatchWriteItem":
        values = set()
        for table, requests in params["RequestItems"].items():
            hash_key = schemas[table].keys["HASH"]
            for request in requests:
                body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                values.add(body[hash_key]["S"])
        return values
    if operation == "Query":
        schema = schemas[params["TableName"]]
        index = params.get("IndexName")
        hash_key = (schema.indexes[index] if index else schema.keys)["HASH"]
        names = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        expression = Expression(params["KeyConditionExpression"], "Query")
        for name, operator, refs in key_conditions(expression, names, values, "Query"):
            if name == hash_key:
                return {values[refs[0]]["S"]}
    return None


# --- hooking into botocore ----------------------------------------------------------------------

class StrictChecker:
    """Checks every DynamoDB request of the clients it is attached to; records all calls.

    A violation raises StrictViolation from the client call (DynamoDB would have answered
    ValidationException) and is also kept in `violations`, so a caller that swallows
    exceptions can't hide it.
    """

    def __init__(self, schemas=None):
        self.schemas = dict(schemas or {})
        self.calls = []  # (operation, params)
        self.violations = []

    def attach(self, client):
        client.meta.events.register("provide-client-params.dynamodb.*", self._on_params)
        return client

    def _on_params(self, params, model, **_kwargs):
        import copy

        self.calls.append((model.name, copy.deepcopy(params)))
        problems = check(model.name, params, self.schemas)
        if problems:
            self.violations.extend(problems)
            raise StrictViolation("; ".join(problems))

    def operations(self):
        return {operation for operation, _params in self.calls}
