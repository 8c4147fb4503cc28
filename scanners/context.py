"""Context checks: is this regex match a credential, or something that only looks like one?

Precision lives here. A match is dropped when its value is a placeholder
(``<your-token>``, ``changeme``, ``xxxx``), a template or environment
reference (``${DB_PASSWORD}``, ``{{ vault_pw }}``, ``os.environ[...]``), a
``secretsd://`` reference, part of an ansible-vault block, an example value
(``AKIA...EXAMPLE``), a hash, UUID, path, URL or identifier, or human text.
Weak human-chosen passwords (``hunter2``) are *not* dropped: real code is
full of them, and they are exactly what attackers try first.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from functools import lru_cache

from secretsd.scanners.checksums import b64url_bytes, b64url_json
from secretsd.scanners.decode import decoded_text
from secretsd.scanners.filters import DEFAULT_FILTERS, LOCAL_HOSTS, TIERS, Filters, lower_tier
from secretsd.scanners.spot import Spot

from secretsd.ref import is_reference

__all__ = [
    "CODE_EXTENSIONS",
    "DEFAULT_FILTERS",
    "TIERS",
    "Filters",
    "is_code_path",
    "is_documented_sample",
    "is_i18n_path",
    "is_test_path",
    "judge_assignment",
    "judge_token",
    "judge_uri_password",
    "lower_tier",
    "shannon_entropy",
]


def _words(text: str) -> frozenset[str]:
    """A word list written as one string (easier to read and extend than a long literal)."""
    return frozenset(text.split())


CODE_EXTENSIONS = _words(
    """py pyw pyi js mjs cjs jsx ts tsx java kt kts scala groovy go rb php cs vb fs c h cc cpp
    hpp cxx m mm rs swift dart lua pl pm r jl ex exs erl clj cljs hs ml elm vue svelte
    coffee gradle sbt"""
)

#: "Change it before production": in any value, token or password, it marks a placeholder.
_CHANGE_IT = _words(
    """change-in-prod change_in_prod change-this change_this a_changer a-changer à_changer
    à-changer zu_ändern zu-ändern zu_aendern"""
)
#: "Replace" in other languages, as docs and Helm values write it for a value to fill in
#: (``sessionSecret: "VERVANGEN"``): a placeholder as a password and as a token.
_REPLACE_WORDS = _words(
    """vervangen ersetzen remplacer reemplazar substituir sostituire zastąp zastap thay_bang
    thay-bang"""
)
#: Substrings that make a value a placeholder: it cannot be anyone's credential.
_PLACEHOLDER_WORDS = tuple(
    _CHANGE_IT
    | _REPLACE_WORDS
    | _words(
        """example placeholder redacted changeme change_me change-me replace_me replace-me replaceme
    changeinprod changethis changez
    replace_with replace-with
    your_ your- yourpass yourpw yourtoken yourkey yoursecret yourapikey their_ their- xxxx **** ....
    < > insert_
    enter_ enter-
    notreal notareal not_a_real not-a-real secret_here token_here key_here password_here _goes_here
    goeshere passwordhere secrethere tokenhere keyhere
    votre_ votre- tu_contrase tu-contrase sua_senha sua-senha dein_passwort dein-passwort ваш
    본인 promijeni cambiame cambiar 你的 您的 请填写 请输入 填写你 替换为 替换成 あなたの"""
    )
)
#: Substrings that make a value *look* made up (test fixtures): reported, with low confidence.
_WEAK_WORDS = tuple(
    _words(
        """sample dummy fake mock todo fixme foobar lorem mysecret my_secret mypassword
    my_password xyz123 abc123xyz"""
    )
)
#: Whole values that are type names, keywords or field names, never a credential.
_PLACEHOLDER_EXACT = _words(
    """none null nil undefined true false yes no on off string str bytes int value default
    empty blank hidden masked unset required optional n/a na tbd todo fixme secret_key access_key
    private_key client_secret bearer basic oauth token_type utf-8 utf8 utf-16 utf-16be
    utf-16le ascii latin-1 latin1 iso-8859-1 base64 hex password passwd pass pwd secret
    token key apikey api_key credentials credential auth contraseña contrasena senha passwort
    kennwort motdepasse mot_de_passe wachtwoord parola lösenord losenord salasana hasło haslo
    şifre sifre heslo jelszó пароль парола 密码 密碼 パスワード 비밀번호 كلمة_المرور סיסמה"""
)
#: Whole values that are real, if weak, credentials: reported with low confidence.
_WEAK_EXACT = _words(
    """test testing foo bar baz qux admin user username root guest anonymous login changeit
    secretpassword passphrase hunter2 tiger mypass mysecret s3cr3t p4ssw0rd pa55word
    passw0rd"""
)
_TEMPLATE = re.compile(
    r"^#{2,}[A-Za-z_][\w.-]*#{2,}$|^@@[A-Za-z_]\w*@@$|^@[A-Z][A-Z0-9_]*$|"
    r"\$\{|\$\(|\{\{|\}\}|\{%|<%|%\(|#\{|\[\[|\]\]|(?<![A-Za-z0-9])%[sd](?![A-Za-z0-9])|\{\d*\}|"
    r"^%\d(?:[:@/ ,]%\d)*$|"  # a batch or template's positional arguments: %3:%4
    r"^\$[A-Za-z_]\w*$|^%[A-Za-z_][\w.]*%$|^@[A-Za-z_][\w.-]*@$|^__[A-Za-z][A-Za-z0-9_.]*__$|^![A-Z_][A-Z0-9_]*!$|^![a-z_]+!$|^%[sdr]$|"
    # a Control-M variable (%%NAME, %%\NAME, %%$NAME: another variable or a vault entry) and a
    # SAS macro variable (&name.)
    r"^%%[\\$]?[A-Za-z_][\w.]*(?:%%)?$|^&&?[A-Za-z_]\w*\.$|"
    r"^\{[0-9a-z_]*\}$|^:[a-z_]+$|^\$\d$|^\$env:|^env:|^exec:|^credentialsJSON:|^\$__[a-z]+\{|[=:/]\$[A-Za-z_]\w*$|"
    r"^%~[a-z]*\d$|"  # a batch file's own path: set PWD=%~dp0
    r"^[.+][ \t]*\$[A-Za-z_]\w*[ \t]*[.+]?$|"  # PHP/Perl concatenation: '...&psw='.$password.'&...'
    r"^#[A-Za-z_]\w*[.(\[][^#\s]*#$|"  # a ColdFusion expression: #application.dsn_pass#
    r"^@(?:keychain|env):|"  # electron-notarize's password references
    # a format field ({password}, an AsciiDoc attribute {auth-token}) and a mail template's
    # #field# (#password#, #PASSWORD#)
    r"\{[A-Za-z_][\w.-]*(?:\[[^\]]*\])?(?:![rsa])?(?::[^}]*)?\}|(?<![A-Za-z0-9])#[A-Za-z_]{2,20}#(?![A-Za-z0-9])"
)
_TOKEN_TEMPLATE = re.compile(r"\$\{|\{\{|\}\}|<%|%\(|\$\(")
#: The same markers with a whole name inside (``${TOKEN}``, ``{{ key }}``, ``$(cat key)``,
#: ``%(key)s``): in a long random value (a WordPress salt's ``$(Om4A|csK``) two such
#: characters side by side are chance, and only a whole template counts.
_WHOLE_TEMPLATE = re.compile(
    r"\$\{\s*[\w.:-]+\s*(?:[:?-][^}]*)?\}|\{\{[^}]*\}\}|<%|%\(\w+\)|\$\([\w ./-]+\)"
)


def _token_template(secret: str) -> bool:
    """A template or substitution inside a token's value (see ``_WHOLE_TEMPLATE``)."""
    if _TOKEN_TEMPLATE.search(secret) is None:
        return False
    if len(secret) >= 40 and _char_classes(secret) >= 4:
        return _WHOLE_TEMPLATE.search(secret) is not None
    return True


# A literal right after one of these calls is a *name* to look up, not the value.
_LOOKUP_CALL = re.compile(
    r"""(?ix)(?:environ|getenv|env|ENV|fetch|get|read|lookup|secret|secrets|vault|config|
    setting|settings|param|parameter|load|decrypt|resolve|keyring|get_password|credentials?|
    getProperty|GetEnvironmentVariable|getString|property|value)\s*[(\[]\s*[rbuf]?["'`]$"""
)
#: A URI without credentials as the whole value: a secret store's address (``awssm://``,
#: ``vault://``, ``op://``, ``gcpsm://``) or an endpoint, never the credential itself.
_SCHEME_REFERENCE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]{1,30}://[^@\s]*"
    r"|(?:vault|awssm|ssm|gcpsm|azkv|keyvault|berglas|sops|ref\+[a-z]+):[\w./#:-]*[/#][\w./#:-]*"
    # an AWS resource name (a Secrets Manager secret, an SSM parameter, a KMS key) names
    # where the value lives
    r"|arn:aws[\w-]*:[a-z0-9-]+:[a-z0-9-]*:\d*:[\w/:.+=@-]+"
    # an Azure App Service Key Vault reference
    r"|@Microsoft\.KeyVault\([^\s]*"
    # LiteLLM's proxy config: ``os.environ/AWS_SECRET_ACCESS_KEY`` reads the variable
    r"|os\.environ/[A-Za-z_]\w*"
)
#: Markers of a line whose value is encrypted or a reference (ansible-vault, a DSC credential
#: encrypted to the node's certificate).
_VAULT_MARKERS = ("$ansible_vault", "!vault", "secretsd://", "-----begin cms-----")
#: A YAML tag and its argument (Home Assistant/ESPHome ``!secret name``, ``!env_var NAME``,
#: CloudFormation ``!Ref DbPassword``, GitLab ``!reference [...]``): a lookup, not a value.
#: A value that merely starts with ``!`` (``!Summer2024``) ends the line, a tag does not.
_YAML_TAG = re.compile(r"![A-Za-z][\w:.-]*")
#: Where a YAML value starts: after ``key:``, a list dash or a flow-sequence bracket.
_YAML_VALUE_START = re.compile(r"(?:[:\-\[,]|^)[ \t]*[\"']?$")
_YAML_TAG_BEFORE = re.compile(r"(?:^|[\s:\-\[,])![A-Za-z][\w:.-]*[ \t]+[\"']?$")
_EXAMPLE_CONTEXT = re.compile(r"(?i)\b(?:example|e\.g\.|for instance|sample|never do this)\b")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: Keys whose UUID value is the key itself: many services issue UUID API keys and tokens
#: (Heroku, ENTSO-E, DMI, Tenable); a UUID under ``request_id`` or ``tenant`` is an id.
_UUID_KEY_NAME = re.compile(
    r"(?i)(?:api[_.-]?key|apikey|token|secret|auth[_.-]?key|access[_.-]?key)$"
)
_ID_WORD = re.compile(
    r"(?i)(?:^|[_.-])(?:id|uuid|guid|tenant|subscription|public|client)(?:$|[_.-])"
)
#: The UUIDs documentation uses (RFC 4122's and Wikipedia's examples): never issued.
_DOC_UUIDS = frozenset(
    ["123e4567-e89b-12d3-a456-426614174000", "550e8400-e29b-41d4-a716-446655440000"]
)
#: Keys that vendors print in their own documentation for anyone to copy (Mailgun's sample
#: API key, the Bot API's sample Telegram token, the TOTP secret of RFC-style tutorials and
#: authenticator docs): they open nothing, wherever they are pasted. Format-specific samples
#: (AWS's ``EXAMPLE`` keys, Stripe's and jwt.io's) are each rule's own ``allow_values``.
DOCUMENTED_SAMPLES = frozenset(
    [
        "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
        "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
        "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "JBSWY3DPEHPK3PXP",
        # Safaricom Daraja's sandbox passkey and Mollie's sample test key, both in their docs
        "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
        "test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM",
    ]
)


def is_documented_sample(value: str) -> bool:
    """A vendor's documented sample, alone or repeated: tutorials double the 16-character
    TOTP sample to make a 32-character secret."""
    if value in DOCUMENTED_SAMPLES:
        return True
    # Runs for every hit: compare lengths and the first copy before building the repeat.
    return any(
        len(value) > len(sample)
        and len(value) % len(sample) == 0
        and value.startswith(sample)
        and value == sample * (len(value) // len(sample))
        for sample in DOCUMENTED_SAMPLES
    )


# Words in a key name that say it holds something *about* a credential (its URL,
# length, type, field name...), not the credential itself: ``password_reset_url``.
_NOT_SECRET_WORDS = _words(
    """url uri urls endpoint path file filename dir folder name names type types field fields
    length len min max count size prefix suffix header label hint policy policies regex re
    pattern format fmt expires expire expiry expiration ttl timeout lifetime age time timestamp
    date enabled
    enable disabled required method strategy version column col attr attribute param params
    placeholder error errors message msg text help title class mode style env var variable
    id ids index idx num number valid validator validation check checker input prompt icon
    img image color colour width height position pos reset forgot changed change strength
    score rules rule template cache store storage provider manager handler factory schema
    serializer form widget view route scope scopes audience issuer algorithm alg encoding
    chars characters alphabet ssid alias
    charset location loc host hostname port user username login email mail account owner kid
    bits limit cost rounds iterations description desc doc docs example sample test mock
    stub regexp selector xpath locator event events callback status state flag flags option
    options setting settings config conf cfg spec def ref reference arn source src target
    dest destination hash hashed digest salt uuid guid fingerprint checksum encrypted
    enc cipher ciphertext sha md5 crc etag commit revision key_id keyid lookup getter setter
    fn func function cls default defaults encode decode join split replace strip lower upper
    startswith endswith find helper mgr lstrip rstrip removeprefix removesuffix partition
    rpartition rfind rindex casefold translate add_argument argument group"""
)
#: Words that make a credential-named key one *about* a credential (``password_reset``).
_ABOUT_WORDS = _words(
    """hashed hash encrypted forgot reset sha sha1 sha256 md5 checksum digest commit fake dummy
    example sample mock placeholder public"""
)
#: Digest words before ``secret``/``key`` name the key a signature is made with (a payment
#: gateway's ``HASH_SECRET``, Alipay's ``md5_key``), not a digest of a secret.
_KEYED_DIGEST_WORDS = frozenset(["hash", "sha", "sha1", "sha256", "md5", "checksum", "hmac"])
_CREDENTIAL_STEMS = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "passcode",
    "passwort",
    "pswd",
    "psw",
    "pw",  # ADMIN_PW, LDAP_BIND_PW
    "secret",
    "token",
    "key",
    "apikey",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "motdepasse",
    "contrasena",
    "contraseña",
    "jwt",
    "bearer",
    "sas",
    "nonce",
    "seed",
    "bindpw",  # LDAP (nslcd, pam_ldap), slapd's rootpw
    "rootpw",
    "authtok",  # sssd's ldap_default_authtok
    "psk",  # Wi-Fi pre-shared key
    "wpa",  # "WPA2 key" (the digits are stripped before the check)
)
#: Words before ``key`` that make it a data-structure key, not a credential.
_DATA_KEY_WORDS = _words(
    """cache primary foreign sort partition hash range row unique lookup map dict translation
    i18n message storage object file bucket redis idempotency dedup dedupe group composite
    natural surrogate index sharding shard routing ssh host signing_public verify kid
    site publishable"""
)
#: Splits a key into words at separators and camel humps. Letters outside ASCII are letters
#: (``contraseña`` is one word, not ``contrase`` + ``a``, which names no credential).
#: Thai and Devanagari vowel signs and combining accents are not word characters to ``re``, yet
#: belong inside a word (``รหัสผ่าน``, ``पासवर्ड``), so they never split one.
_KEY_SPLIT = re.compile(
    r"(?:(?![\u0300-\u036f\u0900-\u097f\u0e00-\u0e7f])[\W_])+|(?<=[a-z0-9])(?=[A-Z])"
)


def _key_words(key: str) -> list[str]:
    """A key's words, lower-cased: ``POSTGRES_PASSWORD``, ``dbPassword``, ``mot-de-passe``."""
    return [w.lower() for w in _KEY_SPLIT.split(key) if w]


def _names_a_credential(words: list[str]) -> bool:
    """Some word of the key *ends* in a credential stem (``dbpassword``, ``apiKey``, ``tokens``),
    so ``passed``, ``tokenizer``, ``secretsd`` or ``passenger`` do not count."""
    for word in words:
        word = word.rstrip("0123456789")
        if word in _NOT_PASS_WORDS:
            continue
        if word.endswith(_CREDENTIAL_STEMS) or word[:-1].endswith(_CREDENTIAL_STEMS):
            return True
        if word in _CREDENTIAL_WORDS:
            return True
    return False


#: "password" in other languages, as prose and docs write it (Senha: ..., Пароль: ...); the
#: last word of a phrase stands for it (mot de *passe*, kata *sandi*, mật *khẩu*).
_FOREIGN_PASSWORD_WORDS = _words(
    """senha contraseña contrasena wachtwoord lösenord losenord salasana hasło haslo heslo
    jelszó şifre sifre parola parolă пароль парола kennwort passwort passord adgangskode
    sandi khẩu parool geslo lozinka лозинка slaptažodis κωδικός πρόσβασης المرور السر عبور
    گذرواژه รหัสผ่าน סיסמה סיסמא पासवर्ड"""
)
#: Whole words that name a credential but are too short or common as stems: ``AZURE_PAT``
#: (a personal access token), ``erlang_cookie`` (what Erlang nodes authenticate with),
#: ``$mdp`` (French shorthand for mot de passe), ``BAIDU_SK`` (the secret half of an AK/SK
#: pair, as Baidu, Huawei and other clouds name it), ``MatKhau`` and ``JELSZO`` (Vietnamese
#: mật khẩu and Hungarian jelszó without their accents), ``ak`` (the access key Baidu's and other
#: Chinese web APIs take in a URL's query, ``api?v=3.0&ak=...``).
_CREDENTIAL_WORDS = (
    frozenset(["pat", "cookie", "mdp", "sk", "ak", "khau", "matkhau", "jelszo"])
    | _FOREIGN_PASSWORD_WORDS
)


#: Words ending in ``pass`` that are no password (``bypassCSP``, ``compass``).
_NOT_PASS_WORDS = _words("bypass bypasses compass encompass trespass overpass underpass")


#: A per-request anti-forgery token (``csrfmiddlewaretoken``, ``X-CSRF-Token``, Rails'
#: ``authenticity_token``): a snapshot of one, in a fixture or saved page, opens nothing.
_CSRF_TOKEN_KEY = re.compile(r"(?i)(?:csrf|xsrf)\w*token$|^authenticity_?token$")
#: A CSP nonce on an HTML element (``<script nonce="...">``): per response, public.
_HTML_NONCE = re.compile(r"(?i)<(?:script|style|link)\b[^>]*\bnonce\s*=")


#: A WordPress application password as WordPress shows it: six groups of four, blank-separated.
_WP_APPLICATION_PASSWORD = re.compile(r"[A-Za-z0-9]{4}(?: [A-Za-z0-9]{4}){5}")
#: "public" just before a bare key word (``Server public key: ...``, ``Public Key = ...``).
_PUBLIC_BEFORE_KEY = re.compile(r"(?i)\bpublic[ \t_-]?$")
#: An Azure storage account key: 64 random bytes in base64.
_ACCOUNT_KEY = re.compile(r"[A-Za-z0-9+/]{86}==")


def _storage_account_key(key: str, value: str) -> bool:
    """``AZURE_STORAGE_KEY``, ``dwh_storage_key``: in code a "storage key" is mostly the name
    something is stored under (``STORAGE_KEY = "cart"``), but 64 random bytes under it are the
    storage account's key."""
    return "storage" in _key_words(key) and _ACCOUNT_KEY.fullmatch(value) is not None


#: 24 hex digits: what push and analytics SDKs (Umeng, JPush, Getui) issue as an app's AppKey.
_HEX24 = re.compile(r"[0-9a-f]{24}")


def _public_app_key(key: str, value: str) -> bool:
    """An ``appkey`` of 24 hex digits: the public half of a push or analytics SDK's pair (the
    secret is the ``master secret``/``app secret`` beside it), shipped inside every app build;
    the same shape under other names is as often a MongoDB ObjectId."""
    words = _key_words(key)
    named = bool(words) and (words[-1] == "appkey" or words[-2:] == ["app", "key"])
    return named and _HEX24.fullmatch(value) is not None


def _last_segment(key: str) -> str:
    """The part of a dotted name after its namespace (``encryptionKey`` of
    ``xpack.encryptedSavedObjects.encryptionKey``, ``getPassword`` of ``keytar.getPassword``)."""
    return key.rstrip(".").rpartition(".")[2]


def _key_is_about_secret(key: str) -> bool:
    """``password_reset_url`` is about a password; ``db_password`` holds one."""
    words = _key_words(key)
    if not words:
        return False
    if _CSRF_TOKEN_KEY.search(key.replace("-", "_")):
        return True
    if "." in key.strip("."):
        namespace, _, segment = key.rstrip(".").rpartition(".")
        if _key_words(segment) == ["text"] and any(
            word.startswith(("password", "passwd", "pwd"))
            for word in _key_words(_last_segment(namespace))
        ):
            return False  # passwordField.text = @"...": the text typed into a password field
        # A dotted setting (xpack.encryptedSavedObjects.encryptionKey): the segments before
        # the last are its namespace, and the last one says what the value is.
        last = _key_words(segment)
        if last and _names_a_credential(last):
            words = last
    if not _names_a_credential(words):
        return True
    if (
        len(words) >= 3
        and words[-2] == "key"
        and words[-1] not in _NOT_SECRET_WORDS
        and words[-1] not in _ABOUT_WORDS
        and not _names_a_credential(words[-1:])
    ):
        words = words[:-1]  # FORM_KEY_PL, RECAPTCHA_SITE_KEY_IOS: a qualifier after "key"
    if words[-1] == "default" and key.isupper() and _key_holds_password("_".join(words[:-1])):
        return False  # ADMIN_PASSWORD_DEFAULT="...": a variable holding the default password
    if words[-1] in _NOT_SECRET_WORDS or words[-1].rstrip("0123456789") in _NOT_SECRET_WORDS:
        return True  # password_placeholder2: numbered UI strings
    if words[-1] == "key" and len(words) >= 2 and words[-2] in _DATA_KEY_WORDS:
        return not ({"pd", "pagerduty"} & set(words))  # PD_ROUTING_KEY: sends alerts
    if "search" in words and "only" in words:
        return True  # Algolia's search-only API key: made for browsers, it reads public indexes
    if "ssid" in words and not _key_holds_password(key):
        return True  # SECRET_SSID: the network's name, kept beside its password (ssid_password)
    if words[-1] in ("secret", "key") and len(words) >= 2 and words[-2] in _KEYED_DIGEST_WORDS:
        return False  # VNPay's vnp_HashSecret, an MD5 key: the secret a signature is keyed with
    return any(w in _ABOUT_WORDS for w in words)


_CONST_SEGMENT = re.compile(r"(?:^|\.)[A-Z][A-Z0-9]*_?[A-Z0-9_]*(?:\.|$)")
#: ``.env.production``, ``./bin``, ``.venv``: a dotfile or relative path (``.2nU_4y83S6``, with
#: digits and mixed case, is a generated password that starts with a dot).
_DOT_NAME = re.compile(r"\.+(?:/.*|[a-z_][a-z0-9_.-]*|[A-Z_][A-Z0-9_.-]*)?")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
#: Words joined by blanks, ``_`` or ``-``; each a word (lower, Capitalised, UPPER or camelCase
#: humps), so ``lagMpg-eANnvA-SccMfJ`` (a generated password) is not "wordy".
#: An acronym may lead a hump (``LFUtils``, ``iOSKey``, ``getURLPath``) but never ends a word
#: in mixed case, so ``JRQKSWrE`` stays a random run.
_HUMPS = r"[A-Za-z][a-z]*(?:[A-Z][a-z]+)*"
_WORD = rf"(?:[A-Z]+|{_HUMPS}|(?:{_HUMPS})?[A-Z]{{2,}}(?:[A-Z][a-z]+)+)"
_WORDY = re.compile(rf"{_WORD}(?:[ _-]{_WORD})+")
#: A segment of an attribute path is made of words (``os``, ``environ``, ``DB_PASSWORD``,
#: ``getValue``, ``v1``); ``JRQKSWrE.sgkU.Fpe`` (a generated password with dots) is not.
_CODE_SEGMENT = re.compile(rf"_*{_WORD}\d*(?:_+(?:{_WORD}\d*|\d+))*_*")
_IDENTIFIER = re.compile(r"_*[a-z][a-z0-9]*(?:[_.][a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
#: ``fjord_local``, ``postgres_dev``: a word and the environment it is for. People choose
#: these as development passwords; as a *name* (a variable, a column) the suffix is rare.
_ENVIRONMENT_PASSWORD = re.compile(
    r"[a-z]{3,}\d*_(?:dev|local|test|prod|staging|stage|qa|uat|demo|sandbox|pw|pwd|pass|passwd|password)\d*"
)
#: Prefixes that make ``<prefix>_pw`` a role word pair (``db_pw``, ``user_pass``), not a
#: chosen password (``moodle_pw``).
_ROLE_PREFIXES = _words(
    """db database user admin app my your the root service svc api default test new old
    current local dev prod secret password"""
)
#: A PowerShell cmdlet (``Password = ConvertTo-SecureString $_.Password``): code, not a value.
_CMDLET = re.compile(
    r"(?:Get|Set|New|ConvertTo|ConvertFrom|Read|Import|Export|Invoke|Add|Remove|Out|Write)"
    r"-[A-Z][A-Za-z]+"
)
#: A camelCase name: digits close it (``userId2``) but never sit inside a hump, as they do in
#: random base62 (``yojesAvP8hb0jcVq``, a merchant key).
_CAMEL = re.compile(r"[a-z]+(?:[A-Z][a-z]+)+\d*")
#: Words that, joined only with each other, name a slot and not a chosen value.
_ROLE_PHRASE_WORDS = _ROLE_PREFIXES | _words("secure strong key pass pwd token access client")


def _slot_words_only(value: str) -> bool:
    """Every word of ``value`` names a slot, a field or a sentence's glue (``admin_pass``,
    ``not_set``, ``new-password``): what a default says goes there, not a chosen value."""
    words = [w for w in re.split(r"[_\-.]", value.lower()) if w]
    return bool(words) and all(
        w in _ROLE_PHRASE_WORDS
        or w in _FIELD_WORDS
        or w in _SENTENCE_WORDS
        or _names_a_credential([w])
        for w in words
    )


def _role_phrase(value: str) -> bool:
    """``api_secret``, ``secure_password``, ``admin-pass``: two or more words, every one a role
    word, as a URI or doc writes the slot it leaves for the real value."""
    words = [w for w in re.split(r"[_-]", value.lower()) if w]
    return len(words) >= 2 and all(w in _ROLE_PHRASE_WORDS for w in words)


_PATHLIKE = re.compile(
    # @/path: a file read in (Bacula, curl)
    r"^(?:/|\./|\.\./|~/|[A-Za-z]:\\|https?://|file://|@/)|"
    r"^[\w.@-]{1,64}:/(?!/)[\w./-]+$|"  # systemd's LoadCredential=ID:PATH names a file
    r"\.(?:pem|key|crt|cer|p12|pfx|jks|txt|json|ya?ml|toml|ini|cfg|conf|env|py|js|html|sh|"
    r"pub|gpg|asc|der|keystore|log|csv|xml|properties)$",
    re.IGNORECASE,
)
_TEST_PATH = re.compile(
    r"(?i)(?:^|/)(?:tests?|testing|__tests__|spec|specs|testdata|test_data|fixtures?|"
    r"mocks?|e2e|integration_tests?|[\w.-]+_tests?)(?:/|$)|(?:^|/)(?:test_[^/]*|[^/]*_test\.[a-z]+|"
    r"[^/]*\.(?:spec|test)\.[a-z]+|[^/]*Tests?\.[a-z]+|conftest\.py)$"
)
_REPEAT = re.compile(r"(.)\1{5,}")
_SEQUENCE = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop")


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text`` (0 for the empty string)."""
    if not text:
        return 0.0
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values())


@lru_cache(maxsize=4096)
def is_test_path(path: str) -> bool:
    """Whether ``path`` is test code or test data (teams choose whether these are reported)."""
    return _TEST_PATH.search(path) is not None


#: Program source named without an extension: Groovy pipelines and Ruby DSL files.
_CODE_FILE_NAMES = frozenset(
    ["Jenkinsfile", "Vagrantfile", "Rakefile", "Gemfile", "Fastfile", "Podfile", "Dangerfile"]
)


@lru_cache(maxsize=4096)
def is_code_path(path: str) -> bool:
    """Whether ``path`` is program source, where an unquoted value is an expression."""
    name = path.rsplit("/", 1)[-1]
    if name in _CODE_FILE_NAMES:
        return True
    return "." in name and name.rsplit(".", 1)[-1].lower() in CODE_EXTENSIONS


_ARTICLE_STEM = re.compile(
    r"(?i)(?:a|an|the|my|your|some|our|test|dummy|fake|sample|example|default|secret|new|old)"
    r"[ _-]?(?:password|passwd|pass|pwd|secret|token|key|apikey|api_key)s?\d{0,3}|"
    r"(?:password|passwd|pass|pwd|secret|token|key)[ _-]?"
    r"(?:test|example|sample|dummy|fake|here|placeholder|value|goes[ _-]?here)"
)
_VERSIONISH = re.compile(r"\d+(?:\.\d+)+(?:-(?:\d+(?:\.\d+)*)?)?")
_MODULE_REF = re.compile(r"[A-Za-z_][\w.-]*:[A-Za-z_][\w.]*")
_PASSWORD_NAME = re.compile(r"(?i)pass|pwd|psw|contrase|motdepasse")
_BASE64ISH = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")


def _looks_base64(value: str) -> bool:
    """``/a3s8bn2D...=``: random base64 that happens to start with a slash, not a path."""
    return (
        _BASE64ISH.fullmatch(value) is not None
        and _char_classes(value) >= 3
        and shannon_entropy(value) >= 4.0
    )


_NOT_A_VALUE = re.compile(
    r"--?[a-z][a-z0-9-]*|--[A-Za-z][\w-]*|#[a-z_][a-z0-9_-]*|[A-Za-z][A-Za-z0-9]*=(?:[a-z]+|\d+)|[\w.-]{1,32}/|"
    r"[A-Za-z_][A-Za-z_-]*(?:/[A-Za-z_][A-Za-z_-]*)+"  # America/Los_Angeles, text/plain
)


def _in_template(spot: Spot) -> bool:
    """The value sits inside a ``{{ ... }}`` expression (a lookup's argument, not the value),
    unless it is the expression's ``| default('...')``: that literal is used wherever the
    variable is unset."""
    line, at = spot.line, spot.at
    if at < 0:
        return False
    if _PSQL_VARIABLE_BEFORE.search(line, 0, at) is not None:
        return True  # PASSWORD :'role_password': psql puts its variable's value there
    opened = line.rfind("{{", 0, at)
    inside = opened >= 0 and line.rfind("}}", 0, at) < opened and line.find("}}", at) >= 0
    return inside and _JINJA_DEFAULT_BEFORE.search(line, opened, at) is None


_JINJA_DEFAULT_BEFORE = re.compile(r"\|[ \t]*default\([ \t]*[\"']$")
#: psql's ``:'name'`` (and ``:"name"``) interpolates a variable set with ``\set`` or ``-v``.
_PSQL_VARIABLE_BEFORE = re.compile(r"""(?:^|[\s=(,]):["']$""")


_NAME_LIKE = re.compile(r"[A-Za-z][A-Za-z_-]*")
_CREDENTIAL_WORD = re.compile(r"(?i)pass(?:word|wd)?|secret|token|apikey|api_key|credential")
# Calls whose argument *is* the value (wrappers); any other call's argument is not.
_WRAPPER_CALLS = frozenset(
    [
        "unwrap_or",  # Rust: env::var("DB_PASSWORD").unwrap_or("..."): the value when unset
        "str",
        "string",
        "secretstr",
        "secret",
        "securestring",
        "bytes",
        "password",
        "hex2bin",  # PHP: $config['encryption_key'] = hex2bin('...')
        "sensitive",  # Puppet: password => Sensitive('...')
        "base64_decode",
        "text",
        "u",
        "b",
        "char",
        "new",
        "byte",  # Go: []byte("...")
        "some",  # Rust: Some("...")
        "from",  # Rust: String::from("..."), Node: Buffer.from("...")
        "field",  # pydantic: db_password: str = Field("...", env="DB_PASSWORD"), the default
        # bytes.fromhex("..."), base64.b64decode("..."): the literal is the key, encoded
        "fromhex",
        "unhexlify",
        "b64decode",
        "frombase64string",  # .NET: Convert.FromBase64String("...")
        "atob",  # JavaScript
        "decodebase64",  # Apache Commons Codec: Base64.decodeBase64("...")
        "hexstringtobytes",
        "parsehexbinary",  # DatatypeConverter.parseHexBinary("...")
    ]
)
#: A call that sets an option by name (Spark's ``.option("password", "x")``, Java's
#: ``props.setProperty("password", "x")``): the second argument is the named setting's value.
_SETTER_CALL = re.compile(
    r"(?i)(?:^|[.\s])(?:option|set|put|setproperty|setoption|set_option|property|config|param)"
    r"\s*\(\s*$"
)
#: A call's keyword argument before the literal: ``(client_id="``.
_KEYWORD_ARGUMENT = re.compile(r"\(\s*([A-Za-z_]\w*)\s*=\s*[rbuf]?[\"']?$")
_CALL_BEFORE = re.compile(r"([A-Za-z_][\w.$]*)\s*\(\s*[rbuf@]?$")
#: ``env('DB_PASSWORD', '<default>')``: a call's second argument after a quoted name.
_SECOND_ARGUMENT = re.compile(
    # getattr(settings, "NAME", "..."): an object before the quoted name
    r"""([A-Za-z_][\w.$]*)\s*\(\s*(?:[A-Za-z_][\w.]*\s*,\s*)?[rbuf]?["'][\w.:-]{1,80}["']\s*,\s*"""
    r"""[rbuf@]?$"""
)
#: Calls whose second argument is the value used where the named setting is missing:
#: ``env('DB_PASSWORD', 'x')`` (Laravel), ``os.getenv("PW", "x")``, ``ENV.fetch("PW", "x")``,
#: ``config('db.password', 'x')``, ``getOrDefault("PW", "x")``: that literal is what runs.
_DEFAULTING_CALLS = frozenset(
    [
        "env",
        "getenv",
        "get",
        "fetch",
        "config",
        "getordefault",
        "getproperty",
        "setting",
        "default",
        "getattr",
        "getorelse",  # Scala: sys.env.getOrElse("DB_PASSWORD", "...")
    ]
)


#: ``YourSuperSecretKey...``, ``AIzaSyYourMapsKeyHere``: says what to put there.
#: A whole value that is an e-mail address: under a key or token name it names an account.
_EMAIL_ADDRESS = re.compile(r"[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_YOUR_CAMEL = re.compile(r"Your[A-Z]|(?<![A-Za-z])your[A-Z]")


#: Digits and signs read as letters (``3x4mpl3``), to see the word a value spells.
_LEET = str.maketrans("4@3105$7", "aaelosst")
#: A URL without its scheme (``t.me/BotFather``, ``github.com/settings/tokens``).
_BARE_URL = re.compile(
    r"(?i)(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|me|dev|app|co|gg|ai)/"
)


#: Where a secret is kept: a value of words naming one (``see-vault``, ``lagret-i-keyvault``,
#: ``siehe-Tresor``) says where to look, in any language, and is no credential itself.
_SECRET_STORE_WORDS = _words(
    """vault keyvault keychain 1password onepassword bitwarden lastpass keepass keepassxc
    passbolt secretsmanager secretmanager ssm sops tresor bóveda boveda hvelv hvelvet kluis
    coffre cofre cassaforte sejf trezor"""
)
_WORD_RUN = re.compile(r"[^\W\d_]+(?:[-_ ](?:[^\W\d_]+|\d{1,4}))+")


def _names_secret_store(value: str) -> bool:
    """Words joined by ``-``/``_`` (a year may close them), one of which names a secret store."""
    if not _WORD_RUN.fullmatch(value):
        return False
    words = re.split(r"[-_ ]", value.lower())
    return sum(w.isalpha() for w in words) >= 2 and any(w in _SECRET_STORE_WORDS for w in words)


#: "Your ..." in other languages: at a value's start (``tu_clave_secreta``, ``votre-cle``,
#: ``la_tua_password``, ``twoje_haslo``, ``ditt_lösenord``), or at its end where the language
#: puts it there (Indonesian ``kunci_rahasia_anda``, Vietnamese ``mat_khau_cua_ban``, Turkish
#: ``şifreniz``): a value to fill in, like ``your_api_key``.
_YOUR_ABROAD = re.compile(
    r"(?i)^(?:(?:la|il|le|el|o|a)[_-])?"
    r"(?:tu|su|tus|sus|seu|sua|suo|votre|vos|ton|ta|dein|deine|ihr|ihre|tuo|tua|twoj|twój|twoje"
    r"|twoja|twojego|uw|jouw|din|ditt|dine|dina|tvoje|tvoj|tvůj|vaše|vase|váš|vasi|vaš)"
    r"[_-][^\W\d_]{3,}"
    r"|^[^\W\d_]{3,}(?:[_-][^\W\d_]{2,})*[_-](?:anda|kamu|cua[_-]ban|của[_-]bạn)$"
    r"|^(?:şifre|sifre|parola)n[\u0131i]z|^(?:jelszavad|salasanasi)"
)


def _says_your(value: str) -> bool:
    """A value that names the reader's own credential (``YourApiKey``, ``tu_clave_secreta``,
    ``kunci_rahasia_anda``): a slot to fill in. Every judge asks this one question, so the
    languages it knows stay in one place."""
    return _YOUR_CAMEL.search(value) is not None or _YOUR_ABROAD.match(value) is not None


#: A word (any language) between runs of stars: what a redacted cell or export shows.
_STARRED_WORD = re.compile(r"\*{2,}[^\W\d_]{2,20}\*{2,}")


#: A vendor's key prefix followed only by a mask (``tvly-xxx``, ``sk_live_XXXXXXXX``, ``ghp_****``).
_PREFIXED_MASK = re.compile(r"(?:[A-Za-z0-9]{1,10}[-_]){1,2}(?:[xX]{3,}|\*{3,}|\u2022{3,})")


def _is_placeholder(value: str, filters: Filters = DEFAULT_FILTERS) -> bool:
    """A value that cannot be a credential: a type name, a marker, a run of one character."""
    low = value.lower()
    if _ARTICLE_STEM.fullmatch(value) or _VERSIONISH.fullmatch(value):
        return True
    if _names_secret_store(value) or _says_your(value):
        return True
    # ``.strip`` drops the separator an unquoted value keeps in JSON: ``"askForPassword": true,``
    if low in _PLACEHOLDER_EXACT or low.strip("_-.*?[],;") in _PLACEHOLDER_EXACT:
        return True
    if low in filters.placeholders:
        return True
    if any(word in low for word in _PLACEHOLDER_WORDS):
        return True
    if _STARRED_WORD.fullmatch(value):
        return True  # ***hidden***, ***oculto***: a word between masks says it was taken out
    if _PREFIXED_MASK.fullmatch(value):
        return True  # tvly-xxx, sk-****: a vendor's prefix kept, the rest masked
    if "example" in low.translate(_LEET) or _BARE_URL.match(value):
        return True  # eX4mP13p455w0Rd spells "example"; t.me/BotFather says where to get one
    if _REPEAT.search(value) and len(set(value)) <= 3:
        return True
    if len(set(low)) <= 2 or value.endswith(("...", "\u2026")):
        return True  # one character over and over, or an elided example ("Wq9x...")
    return _is_sequence(value) and not value.isdigit()


_BASE64_TEXT = re.compile(r"(?:[A-Za-z0-9+/]{4}){3,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _encodes_placeholder(value: str, filters: Filters = DEFAULT_FILTERS) -> bool:
    """Base64 whose text is a placeholder (``UkVQTEFDRV9XSVRIX...`` is ``REPLACE_WITH_...``):
    a Secret's value, or one copied from a Secret, with no ``kind: Secret`` in sight to have
    it decoded and judged as text."""
    if not _BASE64_TEXT.fullmatch(value):
        return False
    text = decoded_text(value)  # the Secret decoder's own reading of base64 as text
    return (
        text is not None
        and len(text) >= 4
        and text.isascii()
        and text.isprintable()
        and (_is_placeholder(text, filters) or _UPPER_WORDS.fullmatch(text) is not None)
    )


def _is_sequence(value: str) -> bool:
    """``abcdef``, ``qwerty``, ``12345678``: a keyboard or alphabet run. As a token it is made
    up; as a password (digits) it is the weakest real one there is, so callers decide."""
    low = value.lower()
    return any(low in seq and len(low) >= 5 for seq in _SEQUENCE) or _interleaved_runs(low)


def _stepwise(chars: list[int]) -> bool:
    """Each character one step from the last, all in the same direction (digits wrap)."""
    steps = {(b - a) % 10 if chr(a).isdigit() else b - a for a, b in itertools.pairwise(chars)}
    return len(steps) == 1 and steps <= {1, -1, 9}


def _interleaved_runs(low: str) -> bool:
    """``a1b2c3d4e5f6``, ``z9y8x7w6v5u4``: an alphabet run woven with a digit run, as people
    type a value that only has to look long; no generator makes it."""
    if not low.isalnum() or len(low) < 12:
        return False
    letters = [ord(c) for c in low if c.isalpha()]
    digits = [ord(c) for c in low if c.isdigit()]
    return len(letters) >= 6 and len(digits) >= 4 and _stepwise(letters) and _stepwise(digits)


def _is_weak(value: str) -> bool:
    """A real but guessable or fixture-looking value (``admin``, ``fake-pw-123``). A fixture
    word is most of such a value; in a long phrase (``mySecretKeyForJWTTokenGeneration...``,
    a signing key in use) it is one word among many."""
    low = value.lower()
    if low in _WEAK_EXACT:
        return True
    return any(word in low and len(word) * 10 >= len(low) * 3 for word in _WEAK_WORDS)


#: Weak values that read as fixtures wherever they are (``test``, ``foo``): never above ``low``.
_FIXTURE_EXACT = _words(
    """test testing foo bar baz qux mypass mysecret hunter2 tiger s3cr3t secretpassword
    android"""
)  # hunter2, scott/tiger: the canonical examples; android: the Android debug keystore's
# published default. ``Passw0rd``-style spellings and ``changeit`` (the JDK's default, kept
# for one's own keystores) are not here: people deploy them, so a clear context keeps medium.
# Between a password-named key and its literal: only the operator, quotes and a ``new String(``
# (``password = "x"``, ``'password' => 'x'``, ``setPassword("x")``), not ``f(user, usage='x')``.
_DIRECT_ASSIGN = re.compile(
    # a blank before a quoted value assigns in Groovy/Gradle DSLs: ``storePassword 'x'``
    r"""[\\"'`\]\s]*(?:(?:=|:=|:|=>|<-|\?=|\|\|=|\?\?=|,|\()\s*(?:new\s+String\(\s*)?|\s(?=["'`]))"""
    r"""(?:[rbuf@N]|u8)?\\?["'`]?"""
)
#: What the last word of a key that *holds* a password ends with (``db_password``, ``ssh_pass``).
_PASSWORD_STEMS = (
    "password",
    "passwd",
    "pass",
    "pwd",
    "pswd",
    "psw",
    "passphrase",
    "passcode",
    "pw",
    "passwort",
    "motdepasse",
    "passe",  # mot de passe, mot_de_passe: the key's last word
    "mdp",  # mot de passe, shortened
    "contrasena",
    "kennwort",
    "wachtwoord",
    "senha",
)
#: Prose that states a password and sets the value apart as a literal (``its password is
#: ``manager````, ``**Password:** `admin```): as clear as an assignment, weak values included.
_PROSE_LITERAL = re.compile(
    r"(?:\*\*|__)?[ \t]*(?::|=|is|was|has[ \t]been|will[ \t]be|là|adalah|jest|è|"
    r"(?:(?:is|was|has[ \t]been)[ \t])?"
    r"(?:set|changed)[ \t]to)[ \t]*(?:\*\*|__)?[ \t]*(?:``|`|\*\*)"
)
#: A variable's own ``${DB_PASSWORD:-<default>}`` default, assigned to it.
_SHELL_DEFAULT_BETWEEN = re.compile(r"""[ \t]*[:=][ \t]*["']?\$\{[A-Za-z_][\w.]*(?::?[-=]|:)""")
#: A ``password`` element's text, a ``value`` attribute beside a password ``name``, a
#: named property's text: XML gives the password its own slot.
_XML_VALUE_BETWEEN = re.compile(r"""(?:["'][ \t]+value[ \t]*=[ \t]*["']|["']?[ \t]*>)""")
#: Environment and settings lookups that take a default, as regex text: one list for the two
#: patterns below. The ``env-fallback-default`` rule reads the same lookups;
#: ``tests/scanners/test_env_lookups.py`` keeps the two in step.
ENV_LOOKUP_CALLS = (
    r"getenv",
    r"environ\.get",
    r"getProperty",
    r"getOrDefault",
    r"getOrElse",
    r"GetEnvironmentVariable",
    r"\benv",
    r"ENV\.fetch",
    r"Deno\.env\.get",
    r"env::var",
)
#: Lookups written as an attribute or an index: ``process.env.X``, ``ENV["X"]``.
ENV_LOOKUP_INDEXES = (
    r"process\.env\.",
    r"import\.meta\.env\.",
    r"process\.env\[[\"']",
    r"\bENV\[[\"']",
    r"\benvironment\[[\"']",
)
_ENV_LOOKUP_CALL = "|".join(ENV_LOOKUP_CALLS)
#: The default of an environment lookup: ``getenv("DB_PASSWORD", "x")``,
#: ``process.env.DB_PASSWORD || 'x'``, ``os.environ.get("DB_PASSWORD") or "x"``.
_ENV_LOOKUP_BEFORE = re.compile(
    rf"""(?i)(?:{_ENV_LOOKUP_CALL})\([ \t]*["']$|(?:{"|".join(ENV_LOOKUP_INDEXES)})$"""
)
_ENV_DEFAULT_BETWEEN = re.compile(
    r"""["']?\]?[ \t]*(?:,|\)?[ \t]*(?:\|\||\?\?|\?:|\bor\b))[ \t]*["'`]"""
)


#: ``pw = os.environ.get("DB_PASSWORD", "x")``: the lookup sits between the key and the value.
_ENV_CALL_BETWEEN = re.compile(
    rf"""[ \t]*(?:=|:=|:|=>)[ \t]*[\w.]{{0,30}}?(?:{_ENV_LOOKUP_CALL})\([ \t]*"""
    r"""["'](?P<name>\w+)["'][ \t]*,[ \t]*["'`]"""
)


def _cli_flag_value(line: str, at: int, between: str) -> bool:
    """A password flag's argument (keytool's ``-keypass`` and its value), the key standing at
    ``at``. Callers keep a bare word out: after ``--ask-vault-pass`` in a comment, "needs" is
    English."""
    return (
        at > 0
        and line[at - 1] == "-"
        and re.fullmatch(r"""(?:[ \t]+|[ \t]*=[ \t]*)["']?""", between) is not None
    )


def _env_default(line: str, at: int, between: str) -> bool:
    """The literal is the default of an environment lookup of a password variable (the key
    stands at ``at``)."""
    if at > 0 and _ENV_LOOKUP_BEFORE.search(line[:at]) is not None:
        return _ENV_DEFAULT_BETWEEN.fullmatch(between) is not None
    call = _ENV_CALL_BETWEEN.fullmatch(between)
    return call is not None and _key_holds_password(call.group("name"))


def _lookup_fallback_words(spot: Spot) -> bool:
    """Lower-case words as an environment lookup's default (``process.env.JWT_SECRET || '<w>'``
    or ``getenv("SECRET_KEY", "<w>")``, ``<w>`` being words joined by ``_``): a string the
    program signs with whenever the variable is unset, not a name, whatever its words."""
    line, at = spot.line, spot.key_at
    return (
        spot.value.islower()
        and at > 0
        and _ENV_LOOKUP_BEFORE.search(line[:at]) is not None
        and _ENV_DEFAULT_BETWEEN.fullmatch(spot.between) is not None
    )


#: A Markdown table row that names a setting and gives its value in a later cell.
_TABLE_BETWEEN = re.compile(r"`?[ \t]*\|(?:[^|\n]{0,120}\|){0,3}[ \t]*`")
_ASSIGNING_OPS = frozenset(["=", ":", ":=", "=>", "<-", "?=", "||=", "??=", ",", "("])


def _weak_tier(value: str, *, test_path: bool, clear: bool) -> str:
    """The tier of a weak but real password (``root``, ``postgres``, ``12345678``): ``medium``
    where the context leaves no doubt (``clear``: a password-named key assigned a literal, an
    ``sshpass -p``, a URI) outside test code; ``low`` in tests (issue 12: weak test passwords
    are reported with low confidence) and for fixture-looking values (``fake-pw``, ``foo``)."""
    low = value.lower()
    fixture = low in _FIXTURE_EXACT or any(word in low for word in _WEAK_WORDS)
    return "medium" if clear and not test_path and not fixture else "low"


def _states_the_password(spot: Spot, op: str, path: str) -> bool:
    """Whether the line leaves no doubt that ``value`` *is* the password named by ``key``,
    so that a weak value is reported at ``medium``: a direct assignment, prose that sets
    the value apart as a literal, a variable's own ``${X:-default}``, an XML password slot,
    an environment lookup's default, a password flag's argument (a word there only when it
    is ``changeit`` for a keystore of one's own keys), a Markdown table row.
    ``{"password": "medium"}`` in program source (a dict of settings) is not one."""
    line, key, value = spot.line, spot.key, spot.value
    at, between = spot.key_at, spot.between
    if not _key_holds_password(key):  # "Пароль:" in prose, then a literal in backticks
        return _names_password_abroad(key) and _PROSE_LITERAL.fullmatch(between) is not None
    assigned = (
        (not op or op.strip() in _ASSIGNING_OPS)
        and _DIRECT_ASSIGN.fullmatch(between) is not None
        and not (
            op.strip() == ":"
            and is_code_path(path)
            and _quoted_key(line, at)
            and value.isalpha()
            and not key.isupper()  # an upper-case key names a child's environment variable
            and _CREDENTIAL_DICT.search(line, 0, max(0, at)) is None
        )
    )
    return (
        assigned
        or _PROSE_LITERAL.fullmatch(between) is not None
        or _SHELL_DEFAULT_BETWEEN.fullmatch(between) is not None
        or _XML_VALUE_BETWEEN.fullmatch(between) is not None
        or _env_default(line, at, between)
        or (
            _cli_flag_value(line, at, between)
            and (not value.isalpha() or _keystore_default(line, value))
        )
        or (line.lstrip().startswith("|") and _TABLE_BETWEEN.fullmatch(between) is not None)
        or _blank_separated_setting(spot, path)
    )


def _blank_separated_setting(spot: Spot, path: str) -> bool:
    """A config line that is only ``key<blanks>value`` (keepalived's ``auth_pass 1234``,
    mosquitto's ``remote_password x``): in such files the blank is the assignment."""
    line, between = spot.line, spot.between
    return (
        not is_code_path(path)
        and bool(between)
        and not between.strip()
        and not line[: max(0, spot.key_at)].strip()
        and not line[spot.end :].strip()
    )


#: A keytool line about certificates: the truststore's well-known ``changeit`` guards only
#: public certificates there.
_TRUSTSTORE_LINE = re.compile(r"(?i)cacerts|truststore|-import(?:cert)?\b|-file\b|\.(?:crt|cer)\b")


#: A dict that holds a login: ``connect_kwargs={"password": ...}`` (Fabric),
#: ``auth={...}``, ``credentials = {...}``, ``env={...}``.
_CREDENTIAL_DICT = re.compile(
    r"(?i)\b(?:connect_kwargs|connect_args|auth|credentials?|login|env)[ \t]*[=:][ \t]*\{[^{}]*$"
)


#: Secret keys a product ships with and documents (MinIO's ``minioadmin``): a word, but the
#: word that opens every install left at its default.
_VENDOR_DEFAULT_SECRETS = frozenset(["minioadmin"])


def _keystore_default(line: str, value: str) -> bool:
    """``changeit``, the JDK's default keystore password, kept for a keystore of one's own
    keys (``-srcstorepass changeit``); not where a certificate goes into a truststore."""
    return value == "changeit" and _TRUSTSTORE_LINE.search(line) is None


def _names_password_abroad(key: str) -> bool:
    """The key's last word is "password" in another language (``Пароль``, ``Senha``)."""
    words = _key_words(key)
    return bool(words) and words[-1] in _FOREIGN_PASSWORD_WORDS


def _key_holds_password(key: str) -> bool:
    """The key's last word is a password word (``POSTGRES_PASSWORD``, ``ansible_ssh_pass``),
    not a word about one (``pass_arg``, ``SSH_ASKPASS_REQUIRE``, ``password_hint``)."""
    words = _key_words(key)
    if not words:
        return False
    last = words[-1].rstrip("0123456789")  # ``bypass``, ``askpass``: only long stems may close
    return (
        last in _PASSWORD_STEMS
        or last.endswith(("password", "passwd", "passphrase"))
        or (len(last) <= 8 and last.endswith(("pw", "pwd")))  # bindpw, rootpw, dbpwd
        or (len(last) <= 12 and last.endswith("pass") and last not in _NOT_PASS_WORDS)
    )  # keypass, storepass, adminpass; not bypass or compass


#: A local variable's name (``api_key``, ``apiKey``), not a constant that names the setting a
#: call sets (``Context.SECURITY_CREDENTIALS``, ``PASSWORD_KEY``).
_LOCAL_VARIABLE = re.compile(r"[a-z_][a-z0-9_]*|[a-z]+(?:[A-Z][a-z0-9]*)+")


#: A call named for fetching a credential (``getPassword``, ``fetch_token``) takes its name.
_LOOKUP_VERBS = (["get"], ["fetch"], ["read"], ["load"], ["lookup"], ["find"], ["retrieve"])


def _quoted_key(line: str, at: int) -> bool:
    """``"password": ...`` in program source: a dict entry, where a bare word is as often a
    setting (``{"password": "medium"}``, a tier table) as a password; ``PASSWORD = ...`` and
    PHP/Ruby ``'password' => ...`` (config arrays, seeders) are assignments. The key stands
    at ``at``."""
    return at > 0 and line[at - 1] in "\"'`"


#: User files whose hex passwords are digests (Tomcat's ``MessageDigestCredentialHandler``).
_DIGEST_USERS_FILE = re.compile(r"(?:^|/)tomcat-users[\w.-]*\.xml$")
# Modular-crypt and LDAP/Spring hash formats: a stored hash, never the password itself
# (Spring's ``{noop}`` prefix, which means plain text, is deliberately absent).
_CRYPT_HASH = re.compile(
    # an htpasswd or shadow line keeps its user in front: ``admin:$apr1$...``
    r"^(?:[\w.@-]{1,64}:)?\$(?:2[abxy]?|1|5|6|7|y|gy|apr1|argon2(?:id|i|d)|pbkdf2(?:-sha\d+)?|scrypt|sha1|md5)\$"
    # phpass (WordPress ``$P$``, phpBB ``$H$``) and Drupal 7 (``$S$``): portable hashes
    r"|^\$[PHS]\$[./0-9A-Za-z]{20,}$"
    r"|^(?:pbkdf2_sha\d+|argon2|bcrypt_sha256|scrypt)\$"
    r"|^digest1:"  # GeoServer's salted digest
    r"|^md5[0-9a-f]{32}$"  # PostgreSQL's stored md5(password || user), as pg_dumpall writes it
    r"|^SCRAM-SHA-256\$\d+:"  # and its SCRAM verifier
    r"|^\{(?:bcrypt|s?sha(?:256|512)?|s?md5|crypt|pbkdf2|scrypt|argon2|ssha\d*)\}",
    re.IGNORECASE,
)
# Values encrypted for a config decryptor (Jasypt/Spring Cloud/Vault transit and the like).
#: ``{COQLCE6DU6GtcS5P=}`` is Maven's encrypted-password form (``mvn --encrypt-password``).
_ENCRYPTED_VALUE = re.compile(
    # GeoServer's crypt1:/crypt2: (its plain: prefix means plain text and stays a password)
    r"^(?:crypt[12]?|enc|encrypted|cipher|aes|kms|vault:v\d+|sops):|^\{cipher\}"
    r"|^\[enc:[\w.-]+:"  # IIS applicationHost.config, encrypted by its configuration provider
    # Datadog's secrets backend (ENC[k8s_secret@ns/name/key]) and Jasypt's ENC(...): resolved or
    # decrypted when the program starts, not the value
    r"|^ENC[\[(][^\s\])]+[\])]$"
    r"|^\$M\$[\w.+/=$-]{8,}"  # F5 BIG-IP's master-key encrypted values
    r"|^AQICAH[A-Za-z0-9+/]{40,}={0,2}$"  # an AWS KMS ciphertext blob (base64 of its envelope)
    r"|^!\[[A-Za-z0-9+/]{8,}={0,2}\]$"  # MuleSoft secure properties: ![ciphertext]
    r"|^\{[A-Za-z0-9+/]{12,}={0,2}\}$",
    re.IGNORECASE,
)
# Framework validation rules (``required|min:8|confirmed``): what a password must be.
_VALIDATION_WORDS = _words(
    """required nullable sometimes string min max confirmed same different between size regex
    alpha_num alpha_dash email unique exists filled present bail"""
)
# Words that describe the value to put somewhere (``secure-random-32-byte-hex-string``).
_DESCRIBING_WORDS = _words(
    """random string secure generate generated long strong hex base64 bytes byte chars
    characters value here your replace put min least minimum length unique enter insert own
    aleatorio aleatoria aleatório aleatória aleatoire aléatoire zufällig zufaellig casuale
    losowy losowe willekeurig willekeurige caracteres caractères caratteri zeichen znaków znakow
    tekens generar gerar générer generer generieren generare genera wygeneruj genereer cadena
    chaîne chaine seguro segura sicher sicuro"""
)
#: A first word that rates the value to put there (``strong_redis_password``), and the slot
#: nouns such a phrase ends with.
_QUALITY_WORDS = _words(
    "very strong stronger strongest secure long complex safe good hard random super new"
)
_SLOT_NOUNS = _words("password passwd pass pwd passphrase secret key token")
_I18N_PATH = re.compile(
    r"(?i)(?:^|/)(?:i18n|l10n|locales?|langs?|languages|translations?|lang_\w+)/|"
    r"(?:^|/)[^/]*(?:locali[sz]ation|translation|i18n|l10n)[^/]*$|"
    r"\.(?:po|pot|arb|xliff|xlf|strings|resx)$|(?:^|/)messages_[a-z]{2}[^/]*\.properties$"
)
_TEXTLIKE = re.compile(r"[^\W\d_][^\W\d_ .,!?'\-]*(?:[ .,!?'\-]+[^\W\d_]*)*[.!?]?")


#: Erlang sources and terms files, where ``{password, "..."}`` (a tagged tuple in a proplist) is
#: how a setting is written.
_ERLANG_FILES = (".erl", ".hrl", ".config", ".app.src", ".escript")
#: Tables of rows (dumps, seeds, exports), where a password column holds stored digests.
_DATA_PATH = re.compile(r"(?i)\.(?:csv|tsv|sql|psv|dump|ldif)$")
_DOC_EXTENSIONS = _words("md markdown mdx rst adoc asciidoc txt textile org wiki")


@lru_cache(maxsize=4096)
def is_doc_path(path: str) -> bool:
    """Whether ``path`` is prose documentation (a literal there is more often an example)."""
    name = path.rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in _DOC_EXTENSIONS


@lru_cache(maxsize=4096)
def is_i18n_path(path: str) -> bool:
    """Whether ``path`` holds translations (``locales/es.json``, ``app_localizations_pt.dart``),
    where a password-named key's value is the word shown to users."""
    return _I18N_PATH.search(path) is not None


def _is_rule_or_description(value: str) -> bool:
    """``required|min:8``: validation rules; ``long-random-hex-string``: what to put here."""
    parts = value.split("|")
    if len(parts) >= 2 and all(re.fullmatch(r"[a-z_]+(?::[\w.,]*)?", p) for p in parts):
        return any(p.split(":")[0] in _VALIDATION_WORDS for p in parts)
    words = [w.lower() for w in re.split(r"[-_ ]+", value) if w]
    if _rated_slot(words):
        return True
    return len(words) >= 3 and sum(1 for w in words if w in _DESCRIBING_WORDS) >= 2


def _rated_slot(words: list[str]) -> bool:
    """A phrase that rates the value a slot wants (``strong_redis_password``, ``new-password``,
    ``very_secret_key``): what a sample writes where a real value goes. Its first word rates,
    its last word names the slot. Camel case and leet spellings (``StrongP@ssw0rd1``) are left
    alone: labellers of real files split on those, some calling them chosen passwords. ``words``:
    the value's lower-cased words, split on blanks, dashes and underscores."""
    return len(words) >= 2 and words[0] in _QUALITY_WORDS and words[-1] in _SLOT_NOUNS


_TYPE_NAME = re.compile(r"(?:[A-Z][a-z0-9]+){3,}")
#: The configuration passes of a Windows answer file (``<settings pass="windowsPE">``).
_UNATTEND_PASSES = frozenset(
    ["windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem", "auditUser"]
)
#: A build or compiler pass named by its place (``pass: "first"``); any other lower-case word
#: under ``pass`` (``$config['db']['pass'] = "..."``) is the password it looks like.
_PASS_STAGES = _words("first second third fourth final last initial all none both one two three")
#: Delphi/Free Pascal declare a field's type after a colon: ``edtPassword: TEdit;``.
_PASCAL_TYPE = re.compile(r"T[A-Z][A-Za-z0-9]*;?")
_PASCAL_SOURCES = (".pas", ".pp", ".dpr", ".lpr", ".inc")
_CREDENTIAL_HUMP = re.compile(r"(?:Secret|Token|Password|Passphrase|Key|Credential)s?(?=[A-Z]|$)")
#: ``${DB_PASSWORD:-x}`` (shell, Compose) and ``${db.password:x}`` (Spring): the literal that
#: runs wherever the setting is missing. ``${X:?msg}`` and ``${X:+alt}`` are no defaults.
_SHELL_DEFAULT = re.compile(
    r"\$\{(?:[A-Za-z_][\w.-]*:?-([^${}\s?+][^${}\s]*)"
    # ``${VAULT::app::db::1}``: a store's lookup syntax (WebSphere Liberty), not a default
    r"|(?!(?i:vault|ssm|awssm|secretsmanager|file|env|sops|gcpsm|azkv|aws):)"
    r"[A-Za-z_][\w.-]*:([^${}\s?+/#:][^${}\s/#]*))\}"
)


#: A quoted literal that code joins more onto: ``"Trial@Pass" + (-join ...)``, ``'pre' + x``;
#: or a value the text continues with a template: ``-auth admin:<API_TOKEN>``, ``pw${SUFFIX}``.
#: A blank then ``+word`` is a command's next argument (``steamcmd +login u 'pw' +quit``).
_JOINED_AFTER = re.compile(
    r"""["'`](?![ \t]+\+[a-z_]+(?:[ \t]|$))[ \t]*\+[ \t]*[\w$(\[]"""
    r"""|<[A-Z][A-Z0-9_-]*>|\$\{|\$\(|\{\{"""
)


def _joined_on(spot: Spot) -> bool:
    return spot.at >= 0 and _JOINED_AFTER.match(spot.line, spot.end) is not None


def _is_template(value: str) -> bool:
    return _TEMPLATE.search(value) is not None or is_reference(value)


def entropy_floor(value: str, floor: float) -> float:
    """The entropy a value must reach: ``floor``, or at most 3.1 for 32+ hex digits. Hex has
    4 bits per character at most, so a random 32-digit key measures ~3.4-3.8 and would fail
    a floor set for base62 tokens (a KakaoAK key, a Moodle wstoken)."""
    if len(value) >= 32 and _HEX.fullmatch(value):
        return min(floor, 3.1)
    return floor


def is_hash_or_uuid(value: str) -> bool:
    """Hex of a digest's length, or a UUID: a stored hash where any value could stand."""
    if _UUID.fullmatch(value):
        return True
    return len(value) in (32, 40, 56, 64, 96, 128) and _HEX.fullmatch(value) is not None


def _char_classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def _is_human_text(value: str) -> bool:
    """Mostly letters outside ASCII: a localised message (CJK, Cyrillic...), not a secret."""
    letters = [c for c in value if c.isalpha()]
    if not letters:
        return False
    foreign = sum(1 for c in letters if ord(c) > 0x24F)
    return foreign * 2 >= len(letters)


def _random_literal(spot: Spot) -> bool:
    """A long, quoted, high-entropy string is a literal even when it holds brackets: Django's
    generated ``SECRET_KEY`` draws from ``!@#$%^&*(-_=+)``; code in quotes is rarely this random."""
    value = spot.value
    return (
        spot.quoted
        and len(value) >= 32
        and _char_classes(value) >= 3
        and shannon_entropy(value) >= 4.3
    )


def _bracketed_password(spot: Spot) -> bool:
    """A quoted password literal with a bracket in it (``'1KX(M3wwBbbW'``, ``"xWwvJ]6NMw"``):
    generated passwords use brackets; code in a quoted string looks like code."""
    value = spot.value
    brackets = [i for i, c in enumerate(value) if c in "()[]{}<>"]
    return (
        spot.quoted
        and len(value) >= 8
        and len(brackets) == 1  # code and markup pair theirs: f(x), [none], (optional)
        and 0 < brackets[0] < len(value) - 1
        and any(c.isdigit() for c in value)
        and _char_classes(value) >= 3
    )


#: A few lower-case words: how people write a session or signing secret by hand.
_PASSPHRASE = re.compile(r"[a-z0-9]{2,}(?: [a-z0-9]{2,}){1,4}")
#: Words of a sentence, not of a chosen passphrase ("stored in vault", "see the docs").
_SENTENCE_WORDS = _words(
    """the a an in of to for from with by is are be this that your you our see use used set
    stored read here there not no and or on at it its as if when will must should can"""
)


#: A diceware-style passphrase: three to six words, maybe a number ("cobalt otter valkyrie 98").
_DICEWARE = re.compile(r"[a-z]{3,12}(?: [a-z]{3,12}){2,5}(?: [0-9]{1,4})?")


def _quoted_passphrase(spot: Spot) -> bool:
    """A quoted passphrase of a few words under a key that names a signing or session
    secret (a session ``secret``, a ``SECRET_KEY``), or of three words or more under a
    password's key (``"correct horse battery staple"``, a Wi-Fi PSK). Any such concrete value
    opens or signs once deployed; a sentence (``'stored in vault'``) is not one."""
    key, value = spot.key, spot.value
    words = _key_words(key)
    names_secret = words[-1:] == ["secret"] or words[-2:] in (["secret", "key"], ["secret", "base"])
    if names_secret:
        shaped = _PASSPHRASE.fullmatch(value) is not None
    else:
        shaped = _key_holds_password(key) and _DICEWARE.fullmatch(value) is not None
    return (
        shaped
        and not any(word in _SENTENCE_WORDS or word in _ROLE_PREFIXES for word in value.split())
        and not _names_a_credential(value.split())
        and spot.quoted
    )


#: Words that make ``<word>password`` a field's or a form's name, not a chosen password.
_FIELD_WORDS = _words(
    """user username usr login new old current confirm confirmation repeat retype verify
    my your the a db database default secret test testing dummy sample example fake mock
    insecure unsafe weak random simple another
    field input form hashed hash encrypted plain plaintext raw temp tmp initial some
    strong secure super real valid invalid wrong bad good correct account app api auth
    master main primary private public shared global local env ssh ftp smtp mail email
    redis mysql postgres postgresql mongo mongodb ldap key store keystore truststore
    pass password passwd pwd secret token ssid wifi wlan network cassandra elastic rabbit
    rabbitmq kafka minio oracle sql mssql mariadb influx couch"""
)


#: Two consonants that English and other Latin-script words run together (``st``, ``nd``,
#: ``ch``); a pair outside this set (``kg``, ``bp``, ``qz``) is rare in any word.
_WORD_CONSONANT_PAIRS = _words(
    """bb bl br cc ch ck cl cr ct dd dg dl dm dn dr ds ff fl fr ft gg gh gl gm gn gr gs hl hm hn
    hr ht kl kn ks ld lf lg lk ll lm ln lp ls lt lv mb mm mn mp ms nc nd nf ng nk nl nn ns nt nv
    nz ph pl pp pr ps pt rb rc rd rf rg rk rl rm rn rp rr rs rt rv rw sc sh sk sl sm sn sp ss st
    sw tch th tl tm tn tr ts tt tw tz wh wl wn wr ws xp xt zz"""
)
_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxz")


def _random_letters(value: str) -> bool:
    """Lower-case letters drawn at random, not a word: a Google app password (16 letters)
    has consonant pairs that words do not make (``kg``, ``bp``, ``qz``): three or more, or two
    at exactly an app password's length (a vowel-rich draw makes fewer)."""
    if not 16 <= len(value) <= 24:
        return False
    rare = sum(
        1
        for a, b in itertools.pairwise(value)
        if a in _CONSONANTS and b in _CONSONANTS and a + b not in _WORD_CONSONANT_PAIRS
    )
    return rare >= 3 or (rare == 2 and len(value) == 16)


def _chosen_password_word(key: str, value: str) -> bool:
    """A word of the person's own (a project, a host, a name) before ``pass`` in a value
    under a password key (a MySQL password set to the project's name plus "pass") is a
    chosen, weak password; ``new_password``, ``user_password``, ``db_password`` name a
    field or restate the key."""
    if not _key_holds_password(key):
        return False
    low = value.lower()
    match = re.fullmatch(r"([a-z]{3,20})[_-]?(?:pass(?:word|wd)?|pwd|pw|secret)", low)
    if match is None:
        return False
    word = match.group(1)
    key_words = set(_key_words(key))
    if any(field in word for field in ("ssid", "your", "user", "name")):
        return False  # TheSSIDPassword, yourpassword: says what goes there
    return word not in _FIELD_WORDS and not any(word in k or k in word for k in key_words)


#: Two or three lower-case words joined by ``_`` or ``-``: ``gin_layout``, ``blue-harbor``.
_JOINED_WORDS = re.compile(r"[a-z]{3,12}(?:[_-][a-z]{3,12}){1,2}")


def _chosen_words_password(spot: Spot, path: str, op: str) -> bool:
    """In a config file (YAML, ``.env``, properties) every value is a literal: joined words
    under a password key there (``MYSQL_PASSWORD: gin_layout``) are a chosen password, where
    in program source they would be a variable's name, unless a setter takes them as a quoted
    string (``setPassword(...)``). Words that describe a field or a sentence (``not_set``,
    ``from_env``, ``db_password``) are not."""
    key, value = spot.key, spot.value
    literal = not is_code_path(path) or (op.strip() == "(" and spot.quoted)
    if not literal or not _key_holds_password(key) or not _JOINED_WORDS.fullmatch(value):
        return False
    words = re.split(r"[_-]", value)
    return not any(
        w in _ROLE_PREFIXES or w in _FIELD_WORDS or w in _SENTENCE_WORDS for w in words
    ) and not _names_a_credential(words)


def _line_context(spot: Spot) -> str | None:
    """Line context: None for a lookup by name, ansible-vault or a reference; ``low`` for an
    example in prose; ``medium`` otherwise."""
    line, value, before, after = spot.line, spot.value, spot.before, spot.after
    if _LOOKUP_CALL.search(before.rstrip()):
        return None
    if _YAML_TAG_BEFORE.search(before) or (
        _YAML_TAG.fullmatch(value)
        and after[:1] in (" ", "\t")
        and after.strip()
        and _YAML_VALUE_START.search(before)  # not a ``net user NAME !pw /add`` argument
    ):
        return None  # ``password: !secret wifi_password``: the tag names where the value is
    low = line.lower()
    if any(marker in low for marker in _VAULT_MARKERS):
        return None
    return "low" if _EXAMPLE_CONTEXT.search(before) is not None else "medium"


_TOKEN_PLACEHOLDERS = tuple(
    _CHANGE_IT
    | _REPLACE_WORDS
    | _words(
        """example xxxxxx ****** sample your_ your- yourtoken yourkey placeholder dummy redacted
    insert replace_ changeme _here abc123"""
    )
)
#: ``<your-token>``, ``sk-<key>``, ``<insert``: angle brackets around a word, or opening or
#: closing one. A lone ``<`` or ``>`` among other symbols is punctuation, at either end too
#: (WordPress salts use both: ``<P)1t...``), and so are two characters between them
#: (``...?$<IZ>Ec?...``): a placeholder's word is longer.
_ANGLE_PLACEHOLDER = re.compile(r"<[\w .-]{3,}>|^<[\w .-]*>?$|^[\w .-]*>$")


#: ``.*`` counts at a pattern's edge (``.*secret.*``, ``^pass.+$``): inside a random password
#: (``Y8t.*aVb6``) it is two of its characters.
_REGEXISH = re.compile(
    r"\\[swdbSWD]|\(\?[:!=<P]|\[\^|\{\d+,\d*\}|(?:^|[\^(|])\.[*+]|\.[*+](?:$|[$)|])"
)


#: Letters and digits typed in turn: no service issues a value holding it.
_TYPED_RUN = "a1b2c3"


def _made_up(value: str) -> bool:
    """An alphabet or digit run of 8+ (``AbCdEfGhIj``, ``1234567890``) or ``abc123`` inside a
    value: typed by a person writing a fixture; a service never issues it (a random 24-char
    token holds such a run with odds below 1e-9)."""
    low = value.lower()
    if "abc123" in low or _TYPED_RUN in low:
        return True
    run = 1
    for a, b in itertools.pairwise(low):
        run = run + 1 if ord(b) == ord(a) + 1 and a.isalnum() and b.isalnum() else 1
        if run >= 8:
            return True
    return False


#: A format's prefix (``glpat-``, ``sk-proj-``, ``hf_``), cut from the start before judging
#: the body. Only from the start: a ``letters_`` run mid-value is part of the value.
_TOKEN_PREFIX = re.compile(r"[a-z]{2,8}[-_](?:[a-z]{2,8}[-_])?")
#: A body made of fixture words and digits: ``test123456``, ``secret-value-123``.
_FIXTURE_BODY = re.compile(
    r"(?:(?:test|fake|dummy|sample|example|secret|value|token|key|my|mock|demo|invalid|bogus|"
    r"foo|bar|baz)[-_.]?|\d++[-_.]?)+"  # ``\d++``: no backtracking into long digit runs
)


def _mostly_made_up(value: str) -> bool:
    """Runs (``1234``, ``abcd``) make up half the value, it is a short ``...abc123``, or its
    body is fixture words and digits (``glpat-test123456``): a fixture. A self-chosen secret
    that merely *ends* in ``123456789`` is still a secret."""
    low = value.lower()
    if ("abc123" in low and len(low) <= 20) or _TYPED_RUN in low:
        return True
    prefix = _TOKEN_PREFIX.match(low)
    if prefix and prefix.end() == len(low):
        return True  # "ANTHROPIC_API_KEY=sk-ant-": a format's prefix with no body after it
    body = low[prefix.end() :] if prefix and prefix.end() + 8 <= len(low) else low
    if _FIXTURE_BODY.fullmatch(body):  # a short rest is no token body: halibut-lantern-42
        return True
    covered, run = 0, 1
    for a, b in itertools.pairwise(low):
        if ord(b) == ord(a) + 1 and a.isalnum() and b.isalnum():
            run += 1
        else:
            covered += run if run >= 4 else 0
            run = 1
    covered += run if run >= 4 else 0
    return covered * 2 >= len(low)


def _elided(spot: Spot) -> bool:
    """The value is cut short in the text (``eyJhbGciOi...``): an example, not a credential."""
    value = spot.value
    if value.endswith("...") or "\u2026" in value:
        return True  # cut short, or masked in the middle (re_…YHeq): a typed ellipsis
    stem = value.rstrip(".")  # a match may stop inside the dots: ``pypi-AgEN..`` + ``.``
    cut = spot.at + len(stem)
    return bool(stem) and spot.at >= 0 and spot.line.startswith(("...", "\u2026"), cut)


#: Words by which a value declares itself a test value: ``unit-test-only-access-secret``,
#: ``encryption-key-for-tests``, ``sb_publishable_...`` (Supabase's browser key, public), Mapbox's
#: ``pk.`` tokens and PostHog's ``phc_`` project keys.
_DECLARED_FAKE = re.compile(
    r"(?i)(?:^|[_-])(?:test[_-]?only|for[_-]tests?|for[_-]testing|unit[_-]tests?|not[_-](?:a[_-])?"
    r"(?:real|secret)|planted\w*|marker|fixtures?|e2e|do[_-]?not[_-]?use|fake|nep|falsch|faux|falso|falsa|"
    # "not real" and "fictitious" in Spanish, Italian, Portuguese, Czech/Slovak
    r"no[_-]real|non[_-]reale?|n[ãa]o[_-]real|neprav[éeáý]|fictici[oa]|fict[íi]ci[oa]|fittizi[oa])(?:[_-]|$)|"
    r"^sb_publishable_|"
    r"^phc_[0-9A-Za-z]{30,60}$|"  # a PostHog project key: sent by every browser that loads the page
    r"^pk\.eyJ|"  # a Mapbox public token: made for browsers
    r"^pk_(?:live|test)_[0-9A-Za-z]{20,}$|"  # a Stripe publishable key: Stripe.js runs it in pages
    r"^pub[0-9a-f]{32}$|"  # a Datadog client token (RUM, browser logs): made for browsers
    # Google's published reCAPTCHA test keys: they always pass, and open nothing
    r"^6LeIxAcTAAAAA|"
    # the first dev accounts of Hardhat/Anvil and of Katana: every local chain has them
    r"^(?:0x)?(?:ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80|"
    r"59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d|"
    r"c5b2fcab997346f3ea1c00b002ecf6f382c5f9c9659a3894eb783c5320f912)$|"
    # a phrase that says what it is: test-session-secret-that-is-longer-than-32-chars
    r"^(?:test|fake|dummy|mock|sample)[_-][a-z]+[_-][a-z]+[_-][a-z]+(?:[_-][a-z0-9]+)*$|"
    # or has "fake" as one of a few short words: 00-fake-okta-token, svc_fake_pw
    r"^(?:[a-z0-9]{1,10}[_-]){0,3}(?:fake|dummy|mock)(?:[_-][a-z0-9]{1,10}){1,4}$"
)


def _declared_fake(value: str) -> bool:
    """The value says it is for tests only, or is a key published by design."""
    return _DECLARED_FAKE.search(value) is not None


def _jose_header_only(value: str) -> bool:
    """``eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9`` alone: a JWT's header, which signs nothing."""
    if not value.startswith("eyJ") or "." in value.rstrip("."):
        return False
    decoded = b64url_json(value)
    return decoded is not None and set(decoded) <= {"alg", "typ", "kid", "cty", "enc"}


#: The opening of a JSON object, and the members a JOSE header (RFC 7515/7516) may open with.
_JSON_FIRST_MEMBER = re.compile(rb'\{\s*"([A-Za-z_][\w#]{0,15})"\s*:')
_JOSE_MEMBERS = frozenset(b"alg typ kid cty enc zip jku jwk x5u x5c x5t x5t#S256 crit b64".split())


def _opens_like_jose(value: str) -> bool:
    """Whether base64url ``eyJ...`` text may open a JWT's header. JSON that opens with another
    member (a Cloudflare Tunnel token's ``{"a":...,"t":...,"s":...}``) is no cut JWT; text
    that decodes to no JSON member at all (``eyJ0eXUTvA7h...``) is a JWT mangled by hand."""
    opening = b64url_bytes(value[:24])
    if opening is None:
        return True
    member = _JSON_FIRST_MEMBER.match(opening)
    return member is None or member.group(1) in _JOSE_MEMBERS


def judge_token(spot: Spot) -> bool:
    """A format-specific token: only drop obvious examples, placeholders and references."""
    secret, line = spot.value, spot.line
    low = secret.lower()
    if _REGEXISH.search(secret):
        return False  # the pattern that *finds* such tokens (a scanner's own source)
    if _made_up(secret) or _elided(spot) or _jose_header_only(secret):
        return False
    if _declared_fake(secret):
        return False  # sk-ant-planted-000111, test-session-secret-that-is-long-enough
    if (
        secret.startswith("eyJ")
        and secret.count(".") < 2
        and not _jose_header_only(secret)
        and _opens_like_jose(secret)
    ):
        return False  # "eyJ..." without its two dots: a JWT cut or mangled by hand
    if any(word in low for word in _TOKEN_PLACEHOLDERS) or _ANGLE_PLACEHOLDER.search(secret):
        return False
    if _says_your(secret) or _UPPER_WORDS.fullmatch(secret):
        return False  # YourApiKey, kunci_rahasia_anda, SECRET_TOKEN: the slot's name
    # Django's generated keys draw from ``!@#$%^&*(-_=+)``: ``%(`` or ``$(`` there is chance
    if not secret.startswith("django-insecure-") and (
        _token_template(secret) or is_reference(secret)
    ):
        return False
    if Counter(secret).most_common(1)[0][1] > max(4, len(secret) * 0.4):
        return False  # mostly one character: a masked or zeroed example
    line_low = line.lower()
    return "secretsd://" + low not in line_low


#: The word "password" written as the value: in docs and URIs it names the slot, not a value
#: anyone chose (the engine's Basic-auth check uses it too).
DOC_PASSWORDS = frozenset(["password", "pass", "passwd", "pwd", "secret", "pw"])
#: User names that are role words: ``user:password@host`` is a URI's shape, not a login.
_ROLE_USERS = _words("user username usr login name myuser my_user youruser your_user u")
#: ``NetworkCredential("username", "password")``: a quoted role word beside the password.
_ROLE_USER_ON_LINE = re.compile(r"""(?i)["'](?:user|username|usr|login|myuser|your_?user)["']""")


#: ``POSTGRES_USER: postgres``, ``"username": "admin"``, ``user=kkk``: a user setting.
_USER_SETTING = re.compile(
    rb"""(?im)^[ \t]*(?:-[ \t]+)?["']?[\w.-]{0,40}?(?:user(?:name)?|usr|login)["']?[ \t]*"""
    rb"""(?:=|:|=>)[ \t]*["']?([A-Za-z0-9_.@-]{2,64})["']?[ \t]*,?[ \t]*\r?$"""
)

#: A user given as a keyword argument or a key of an inline map, quoted.
_USER_ARGUMENT = re.compile(
    rb"""(?i)(?<![\w.])["']?(?:user(?:name)?|usr|login|uid)["']?[ \t]*(?:=|:|=>)[ \t]*"""
    rb"""["']([A-Za-z0-9_.@-]{2,64})["'](?:[ \t]*[,;]|[ \t]+\w+[ \t]*=)"""
)


#: A user given to a command line's user flag: ``mysql -u root``, ``psql -U postgres``,
#: ``cypher-shell -u neo4j``, ``--user=admin``.
_USER_FLAG = re.compile(
    rb"""(?:^|[ \t"'])(?:-u|-U|--user(?:name)?)(?:[ \t]+|=)["']?"""
    rb"""([A-Za-z_][A-Za-z0-9_.@-]{1,63})\b"""
)


def concrete_user_near(data: bytes, start: int, end: int, lines: int = 3) -> bool:
    """Whether a user setting with a concrete name (``postgres``, ``admin``, ``kkk``) stands
    within ``lines`` lines of ``data[start:end]``: beside it, a role word set as the password
    (``POSTGRES_PASSWORD: password``) is that user's weak password; beside a role-word user
    (``user``/``password``) it only shows a shape. In a history scan only the commit's added
    lines are near: a commit that adds the password line alone to an older user line
    reports nothing here (a tree scan of the file does)."""
    low = start
    for _ in range(lines):
        low = data.rfind(b"\n", 0, max(0, low - 1)) + 1
    high = end
    for _ in range(lines):
        found = data.find(b"\n", high + 1)
        high = len(data) if found < 0 else found
    if any(
        concrete_user(match.group(1).decode("utf-8", "replace"))
        for match in _USER_SETTING.finditer(data, low, high)
    ):
        return True
    # connect(host="db", user="postgres", password=...) or a mysql client's -u flag: the
    # user is an argument on the password's own line
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", end)
    if line_end < 0:
        line_end = len(data)
    return any(
        concrete_user(match.group(1).decode("utf-8", "replace"))
        for pattern in (_USER_ARGUMENT, _USER_FLAG)
        for match in pattern.finditer(data, line_start, line_end)
    )


#: Accounts a password setting can name in its own key: ``MYSQL_ROOT_PASSWORD``,
#: ``ADMIN_PASSWORD``, ``POSTGRES_PASSWORD``, ``CONFIG_KEYSTONE_ADMIN_PW``.
_ACCOUNT_WORDS = _words("root admin administrator superuser sa sysadmin postgres elastic")


def key_names_account(key: str) -> bool:
    """The password's own key names the account it opens (``MONGO_INITDB_ROOT_PASSWORD``):
    a role word set there (``password``, ``secret``) is that account's weak password, as it
    would be beside ``user: root``."""
    return any(w in _ACCOUNT_WORDS for w in _key_words(key))


def concrete_user(name: str) -> bool:
    """A user name of someone's own (``postgres``, ``admin``, ``kalyan``), not a role word
    (``user``, ``username``), a placeholder or a template."""
    low = name.lower()
    return (
        bool(low)
        and low not in _ROLE_USERS
        and low not in DOC_PASSWORDS
        and low not in _PLACEHOLDER_EXACT
        and not _is_template(name)
        and not any(word in low for word in _PLACEHOLDER_WORDS)
    )


#: Anonymous FTP's logins: by convention the password is a courtesy e-mail address or the
#: word itself, and the login opens only what the server publishes to everyone.
_ANONYMOUS_USERS = frozenset(["anonymous", "ftp"])


def anonymous_login(user: str) -> bool:
    """Whether ``user`` is anonymous FTP's login (``ftp.login("anonymous", "me@corp.io")``)."""
    return user.strip().lower() in _ANONYMOUS_USERS


def judge_uri_password(
    user: str,
    password: str,
    host: str,
    filters: Filters = DEFAULT_FILTERS,
    *,
    test_path: bool = False,
) -> str | None:
    """The password part of ``scheme://user:password@host`` (percent-escapes decoded): its
    confidence tier, or None when it is not a credential."""
    from urllib.parse import unquote

    password = unquote(password)
    if any(c.isspace() for c in password):
        return None
    if len(password) < 3 or _is_template(password) or _is_template(user):
        return None
    if anonymous_login(user):
        return None  # ftp://anonymous:guest@mirror: anonymous FTP, open to everyone
    if password.startswith("$") or "," in password:
        return None  # ``https://a:1,b:2@host``: a multi-host list, not a password
    low = password.lower()
    if filters.host_is_example(host):
        return None  # credentials on a documentation host
    if low in DOC_PASSWORDS:
        if not user or user.lower() in _ROLE_USERS or filters.weak_passwords == "drop":
            return None  # user:password@..., :password@...: the URI's shape, no login
        # root:secret@db, admin:password@mq: a concrete user's weak password, the kind
        # that opens default installs; with doubt only in tests
        return _weak_tier(low, test_path=test_path, clear=True)
    if low in filters.placeholders or any(word in low for word in _PLACEHOLDER_WORDS):
        return None
    if _says_your(password):
        return None  # app:YourDbPass@, postgres:PASSWORD_POSTGRES_ANDA@: "your ...", any language
    if _role_phrase(low):
        return None  # cloudinary://api_key:api_secret@cloud, user:secure_password@db: the shape
    if _declared_fake(password):
        return None  # guest:canary-password-marker@: a test's canary, it opens nothing
    if len(set(low)) <= 2 or (_REPEAT.search(password) and len(set(password)) <= 3):
        if password.isdigit() and user and user.lower() not in _ROLE_USERS:
            # ftpuser:111111@host: a concrete user's weak PIN-like password, not an elision
            return _weak_tier(low, test_path=test_path, clear=True)
        return None
    weak = (
        _is_weak(password)
        or low in _PLACEHOLDER_EXACT
        or low == user.lower()
        or (password.isalpha() and password.islower())
        or shannon_entropy(password) < 2.5
    )
    if weak:
        if filters.weak_passwords == "drop":
            return None
        clear = low not in _PLACEHOLDER_EXACT  # guest:guest@rabbit, not app:none@db
        return _weak_tier(password, test_path=test_path, clear=clear)
    host_low = host.lower()
    if any(host_low == h or host_low.endswith(h) for h in LOCAL_HOSTS if h.startswith(".")) or (
        host_low in LOCAL_HOSTS
    ):
        # root:123456@localhost is a dev database's real password; user:1234@localhost in
        # a how-to shows the URI's shape
        simple = _char_classes(password) < 2
        return "low" if simple and (user.lower() in _ROLE_USERS or test_path) else "medium"
    return "medium"


_ERROR_KEY_WORDS = _words(
    """invalid incorrect wrong mismatch matching match not no missing required too short long
    rotated revoked locked disabled denied forbidden unauthorized unknown
    weak expired error errors failed fail failure must should cannot confirm confirmation
    repeat retype again label placeholder title tooltip hint message msg prompt button
    dialog forgot reset new old current show hide visible toggle strength policy rule"""
)


def _key_is_message(key: str) -> bool:
    """``PASSWORDS_NOT_MATCHING``, ``passwordTooShort``: the key of a UI string or error code.
    ``MATCH_PASSWORD`` (fastlane match's passphrase) names a tool, not a mismatch."""
    words = _key_words(key)
    errors = [i for i, w in enumerate(words) if w in _ERROR_KEY_WORDS]
    if words[:1] == ["match"] and errors == [0]:
        return False
    return bool(errors) and len(words) >= 2


#: A line of program source that is a comment (``#``, ``//``, ``--``, ``;``, ``*`` in a block).
_CODE_COMMENT = re.compile(r"[ \t]*(?:#|//|--|;|/?\*)")


def within_code_text(before: str) -> bool:
    """``before`` (a line of program source up to a point) leaves that point in text shown to
    someone: inside a string literal (an odd number of one kind of quote) or an element's text
    (``<p>`` opened and not closed). Prose about a password there is a message or a page.
    Comments are left out: in code they document formats and examples far more often."""
    if _CODE_COMMENT.match(before):
        return False
    plain = before.replace("\\\\", "").replace('\\"', "").replace("\\'", "")
    if any(plain.count(quote) % 2 for quote in "\"'`"):
        return True
    return before.rfind(">") > before.rfind("<") >= 0


#: Words saying which of a password change's fields a key is (``newPassword``).
_PASSWORD_CHANGE_WORDS = _words("new old current confirm confirmation repeat retype again")


#: Upper-case words in any script joined by ``_``: ``DÁN_CLIENT_SECRET`` ("paste the client
#: secret"), ``ВАШ_ПАРОЛЬ``: an instruction or a constant's name, like ``YOUR_API_KEY``.
_UPPER_WORDS = re.compile(r"(?=\w*[^\W\d_])[^\W\d_a-z]+(?:_[^\W\d_a-z]+)+")


#: Six or more words run together (``mySecretKeyForJwtTokenGenerationAndValidation``): a
#: passphrase someone typed as a signing key, not a field's or a type's name.
_CAMEL_PHRASE = re.compile(r"[a-z]+(?:[A-Z]+[a-z0-9]*){5,}\d*")


def _changed_password(key: str, value: str) -> bool:
    """A ``newPassword`` field of a change-password request (API docs, tests): the field's
    words look like a UI string's key, but a value mixing three kinds of characters is a
    password, not a label."""
    words = _key_words(key)
    errors = {w for w in words if w in _ERROR_KEY_WORDS}
    return (
        bool(errors)
        and errors <= _PASSWORD_CHANGE_WORDS
        and _key_holds_password(key)
        and _char_classes(value) >= 3
    )


def judge_assignment(
    spot: Spot,
    *,
    kind: str,
    min_entropy: float,
    min_length: int,
    op: str = "",
    filters: Filters = DEFAULT_FILTERS,
    path: str = "",
    user_nearby: bool = False,
) -> str | None:
    """A ``key = value`` match: the confidence that the spot's value is a credential literal,
    or None.

    ``spot`` holds the value, its key and where both stand on the line. ``kind`` is
    ``password`` (weak values still count, at low confidence) or ``generic``
    (secret/token/api key: the value must look random enough). ``path`` is the file's path:
    test code, translations and program source each change the verdict.
    ``user_nearby``: a concrete user is set within a few lines (``concrete_user_near``), or
    the rule's own ``user`` group names one (an ``HTTPBasicAuth`` call's first argument).
    """
    test_path = is_test_path(path)
    spot = spot.narrowed(spot.value.strip())
    default = _SHELL_DEFAULT.fullmatch(spot.value)
    if default:  # ${DB_PASSWORD:-Wq9x7Lm2}: the literal is what runs wherever the variable is unset
        spot = spot.narrowed(default.group(1) or default.group(2))
    if spot.value.startswith(("plain:", "string:")):
        # GeoServer's plain: and CKAN's string: say the rest is the value itself
        spot = spot.narrowed(spot.value.split(":", 1)[1])
    key, value, line = spot.key, spot.value, spot.line
    if len(value) < max(min_length, 3):
        return None
    if _is_template(value) or _REGEXISH.search(value) or _SCHEME_REFERENCE.fullmatch(value):
        return None  # a template, a pattern, or where the value lives (awssm://prod/db:password)
    if _elided(spot) or _jose_header_only(value) or _declared_fake(value):
        return None  # pypi-AgEN..., a JWT's header alone, "unit-test-only-secret"
    if _joined_on(spot):
        return None  # "Trial@Pass" + (random suffix): the literal is only the value's start
    tier = _line_context(spot)
    if tier is None:
        return None
    if (
        user_nearby
        and kind == "password"
        and value.lower() in DOC_PASSWORDS
        and filters.weak_passwords != "drop"
        and not _CODE_COMMENT.match(line)  # "# login as root with pass": an example in a note
        and (not key or _states_the_password(spot, op, path))
    ):
        # POSTGRES_PASSWORD: password beside POSTGRES_USER: postgres is that user's password
        return _weak_tier(value, test_path=test_path, clear=True)
    if _encodes_placeholder(value, filters):
        return None  # REPLACE_WITH_A_SECURE_PASSWORD, base64-encoded for a Secret
    if _is_placeholder(value, filters) and not (kind == "password" and _is_sequence(value)):
        # qwerty, abcdef: made up as a token, but among the passwords people really choose
        if (
            not key
            and kind == "password"
            and value.lower() in DOC_PASSWORDS
            and not _ROLE_USER_ON_LINE.search(line)
            and not is_doc_path(path)
        ):
            # IDENTIFIED BY 'password', login("root", "pass"): the statement sets it
            return None if filters.weak_passwords == "drop" else "low"
        return None
    if op.strip() == ",":
        # ("password", "salt", 64) is a data tuple; set("password", "x") is a key/value call.
        before_key = line[: max(0, spot.key_at)].rstrip().rstrip("\"'")
        # set("password", "x"), getattr(settings, "API_TOKEN", "x"): a call taking the name
        erlang_setting = before_key.endswith("{") and path.endswith(_ERLANG_FILES)
        if not erlang_setting and not re.search(
            r"[\w\]]\(\s*(?:[A-Za-z_][\w.]*\s*,\s*)?$|\bdefine\s*\(\s*$", before_key
        ):
            return None  # prose: "word ("; Erlang's {password, "..."} is a setting
        # tts(api_key, "voice_id"): a variable is one argument and the literal the next one
        named = _quoted_key(line, spot.key_at) or erlang_setting
        if not named and _LOCAL_VARIABLE.fullmatch(key):
            return None
        if re.match(r"[A-Z][a-z0-9]+[A-Z]|[A-Z]{2,}[a-z]", key):
            return None  # MovedAttribute("HTTPPasswordMgr", ...): a class name, not a key
        if value.isalpha() and value.islower() and not _SETTER_CALL.search(before_key):
            return None  # ("password", "salt"): data; a setter call (.option) sets one
    before_value = spot.before.rstrip().rstrip("\"'`")
    second = _SECOND_ARGUMENT.search(spot.before.rstrip("\"'`"))
    if second and (not key or spot.key_at >= second.start()):
        second = None  # login("user", "pw"): the call itself is the rule's context
    if (
        second
        and op.strip() not in ("(", ".equals(", ",")
        and second.group(1).rsplit(".", 1)[-1].lower() not in _DEFAULTING_CALLS
    ):
        return None  # hash_password("salt", "..."): an argument, not the value
    # A keyless rule's own pattern is the context (``.type('...')`` after a password field).
    call = None if second or not key else _CALL_BEFORE.search(before_value)
    if call and op.strip() not in ("(", ".equals(", ","):
        name = call.group(1).rsplit(".", 1)[-1].lower()
        if name not in _WRAPPER_CALLS:
            return None  # password = hash_password("..."): an argument, not the value
    if _TYPE_NAME.fullmatch(value) and _CREDENTIAL_HUMP.search(value):
        return None  # "secret": "V1SecretVolumeSource": a type name in a schema
    if _PASCAL_TYPE.fullmatch(value) and path.lower().endswith(_PASCAL_SOURCES):
        return None  # edtPassword: TEdit;  a Delphi field's declared type
    name_like = (
        value.isalpha()
        or (bool(key) and _NAME_LIKE.fullmatch(value) is not None)
        or _UPPER_WORDS.fullmatch(value) is not None  # BY 'MYSQL_PASSWORD': a variable's name
    )
    if _MODULE_REF.fullmatch(value) or (
        name_like
        and _CREDENTIAL_WORD.search(value)
        and not _chosen_password_word(key, value)
        and not _CAMEL_PHRASE.fullmatch(value)
        and not _lookup_fallback_words(spot)
    ):
        return None  # "pkg.module:main", "challengePassword"
    key_low = key.lower()
    if value.lower() == key_low:
        return None
    value_low = value.lower()
    squashed = key_low.replace("_", "").replace("-", "").replace(".", "")
    if len(value) >= 6 and value.isupper() and squashed.endswith(value_low):
        return None  # process.env.BROWSERSTACK_ACCESS_KEY || "ACCESSKEY": the name again
    callee = _last_segment(key)
    if op.strip() == "(" and _key_words(callee)[:1] in _LOOKUP_VERBS:
        return None  # keytar.getPassword('app', 'account'): a lookup's arguments are names
    if (
        kind == "password"
        and op.strip() == "("
        and key == callee
        and key[:1].isupper()
        and not _key_holds_password(key)
    ):
        # new UsernamePasswordAuthenticationToken("user", ...), PasswordAuthentication("user",
        # ...): a class named for a login, whose first argument is the principal (a method
        # after a dot, Go's aws.NewStaticCredentials or C#'s client.Authenticate, is not; a
        # key's class, SymmetricSecurityKey(...), takes the key itself)
        return None
    if value_low in key_low.replace("-", "_").split("_") and (
        kind != "password" or _names_a_credential([value_low]) or value_low in _NOT_SECRET_WORDS
    ):
        return None  # api_key: "key", password_field: "field"; POSTGRES_PASSWORD: postgres is weak
    if value.isdigit() and _is_sequence(value) and kind != "password":
        return None
    if key.lower() == "nonce" and _HTML_NONCE.search(line):
        return None  # <script nonce="...">: a CSP nonce, sent to every browser
    if _PUBLIC_BEFORE_KEY.search(line[: max(0, spot.key_at)]):
        return None  # "Server public key: ...": prose names a public key, the key word alone
    if _public_app_key(key, value):
        return None
    if (
        (_key_is_about_secret(key) and not _storage_account_key(key, value))
        or (_key_is_message(key) and not _changed_password(key, value))
        or _is_human_text(value)
    ):
        return None
    if _CRYPT_HASH.search(value) or _ENCRYPTED_VALUE.search(value):
        return None  # a stored hash or a ciphertext for the app's decryptor
    if kind == "generic" and value.lower() in _VENDOR_DEFAULT_SECRETS:
        # MinIO's published default secret key opens every default install; under an access
        # key's name the same word is the login, the other half
        return tier if "secret" in key.lower() else None
    if kind == "generic" and _EMAIL_ADDRESS.fullmatch(value):
        return None  # MINIO_ACCESS_KEY=minio@corp.example: a login name, the secret is elsewhere
    if _is_rule_or_description(value) or (is_i18n_path(path) and _TEXTLIKE.fullmatch(value)):
        return None
    token_named = kind != "password" or (
        bool(key) and not _key_holds_password(key) and not _names_password_abroad(key)
    )
    if token_named and _mostly_made_up(value):
        return None  # test-key-1234567890..., ghp_abc123: typed, never issued
    if op.strip() == "(" and key:
        last = _key_words(key)[-1:]
        if last and not _names_a_credential(last):
            return None  # passVars.Keys.Contains("..."): the method is no credential setter
        argument = _KEYWORD_ARGUMENT.search(spot.between)
        if argument and not _names_a_credential(_key_words(argument.group(1))):
            return None  # Credentials(client_id="..."): the argument names what the value is
    if _UUID.fullmatch(value):
        if filters.uuid_values == "drop":
            return None
        # Under a password key a UUID is a generated password (an Azure service principal's
        # secret, ``password: $(uuidgen)``); under other names it may be an id (issue 12).
        password_slot = kind == "password" and bool(key) and _key_holds_password(key)
        key_slot = (
            _UUID_KEY_NAME.search(key) is not None
            and not _ID_WORD.search(key)
            and value.lower() not in _DOC_UUIDS
        )
        return tier if (password_slot or key_slot) and not test_path else "low"
    if _PATHLIKE.search(value) and not _looks_base64(value):
        return None
    if (" " in value or "\t" in value) and not _WP_APPLICATION_PASSWORD.fullmatch(value):
        if _quoted_passphrase(spot):
            return "low" if test_path else tier  # express-session's two-word example, say
        return None
    if key.lower() == "pass" and (
        _CAMEL.fullmatch(value) or value.lower() in _PASS_STAGES or value in _UNATTEND_PASSES
    ):
        return None  # <settings pass="oobeSystem">, pass: "first": a stage, not a password
    keyed = bool(key)  # rules without a key (login("u", "pw"), -p pw) have no field names
    environment_password = (
        kind == "password"
        and keyed
        and _ENVIRONMENT_PASSWORD.fullmatch(value) is not None
        and _key_holds_password(key)
        and (not is_code_path(path) or spot.quoted)
        and value.rsplit("_", 1)[0].rstrip("0123456789") not in _ROLE_PREFIXES
        and not _names_a_credential(value.split("_")[:-1])
    ) or (kind == "password" and keyed and _chosen_words_password(spot, path, op))
    # keyPassword=fjord_local is a chosen password, not an identifier, and passes both checks;
    # so is the quoted default of a password variable's lookup (ENV.fetch("DB_PASSWORD", "x"))
    environment_password = environment_password or (
        keyed
        and spot.quoted
        and (
            (kind == "password" and _env_default(line, spot.key_at, spot.between))
            or _lookup_fallback_words(spot)
        )
        and not _slot_words_only(value)
    )
    if (
        keyed
        and not environment_password
        and _WORDY.fullmatch(value)
        and (kind != "password" or _IDENTIFIER.fullmatch(value))
    ):
        return None  # human text and identifiers: user-password, Invalid_token
    if (
        (keyed or kind != "password")
        and not environment_password
        and (_IDENTIFIER.fullmatch(value) or _UPPER_WORDS.fullmatch(value))
        and not any(c.isdigit() for c in value)
    ):
        return None  # db_name, SERVICE_ACCOUNT, DÁN_CLIENT_SECRET: a name or an instruction
    digits = sum(c.isdigit() for c in value)
    if _CAMEL.fullmatch(value) and kind != "password" and len(value) < 24 and digits <= 2:
        return None
    if (
        (
            any(c in value for c in "()[]")
            and not _random_literal(spot)
            and not (kind == "password" and keyed and _bracketed_password(spot))
        )
        or (
            # an attribute path; in a dict or argument list it ends with the list's comma
            _DOTTED.fullmatch(path_value := value.rstrip(",;"))
            and (not any(c.isdigit() for c in path_value) or _CONST_SEGMENT.search(path_value))
            and all(_CODE_SEGMENT.fullmatch(segment) for segment in path_value.split("."))
        )
        or _CMDLET.fullmatch(value)
    ):
        return None  # code: a call, a subscript, an attribute path
    if value in ("...", "..") or _DOT_NAME.fullmatch(value) or _NOT_A_VALUE.fullmatch(value):
        return None  # a CLI flag, a #marker, an ssh -o option, a directory
    if _in_template(spot):
        return None
    weak = _is_weak(value)
    if weak and filters.weak_passwords == "drop":
        return None
    entropy = shannon_entropy(value)
    if kind == "password":
        if is_hash_or_uuid(value):
            if _DIGEST_USERS_FILE.search(path):
                return None  # Tomcat's tomcat-users.xml with a digest realm stores digests
            if _UUID.fullmatch(value) or (
                keyed and _PASSWORD_NAME.search(key) and (test_path or _DATA_PATH.search(path))
            ):
                # A UUID, or hex in tests and data (a users table's digests), is reported with
                # doubt; hex under a password key in a config is how ``openssl rand -hex``
                # passwords look.
                return "low"
        # Keyless (login("u", "<hex>"), gh secret set --body <hex>): the call says it is the
        # credential, and many services issue hex API tokens used as passwords: the tier stands.
        if (
            value.isalpha()
            and value.islower()
            and len(value) > 14
            and not _chosen_password_word(key, value)
            and not _random_letters(value)
        ):
            return None  # a long lower-case word is a name, not a password
        if entropy < min_entropy:
            return None
        if (
            weak
            or (value.isalpha() and value.islower())
            or len(value) < 6
            or entropy < 2.3
            or _is_sequence(value)
        ):
            if filters.weak_passwords == "drop":
                return None
            clear = not keyed or _states_the_password(spot, op, path)
            weak_tier: str = lower_tier(tier, _weak_tier(value, test_path=test_path, clear=clear))
            return weak_tier
        return tier
    # generic secrets/tokens/api keys: must look machine-made. Hex has 4 bits per character at
    # most, so a random 40-digit key measures ~3.4-3.8: judged against hex's own ceiling.
    floor = entropy_floor(value, max(min_entropy, 2.8))
    if len(value) < 12 and _char_classes(value) >= 3:
        # a short value cannot measure high: nine characters top out at log2(9) = 3.17, so a
        # typed secret mixing three kinds of character (B0ss@3045) is judged against its own
        # length's ceiling
        floor = min(floor, math.log2(len(value)) - 0.45)
    if entropy < floor:
        return None
    if len(value) < 8:
        return None
    if not (_char_classes(value) >= 2 or len(value) >= 20):
        return None
    bare = _key_words(key)
    if test_path and bare in (["key"], ["nonce"], ["seed"], ["iv"]) and _HEX.fullmatch(value):
        return "low"  # key = '2b7e1516...' in a test: a cipher test vector more often than not
    return "low" if weak else tier
