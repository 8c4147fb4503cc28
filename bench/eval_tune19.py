"""Blind part ``tune19``: Halvard Works, a fictional group with two very different kinds of code.

Halvard Makers (the hobby and devices side) ships and hosts embedded, IoT, home automation, game
and desktop software: Arduino/ESP32 sketches and their ``secrets.h``, MicroPython ``boot.py`` and
``config.py``, PlatformIO builds, ESPHome, Tasmota and Home Assistant YAML, OpenWrt UCI configs,
``wpa_supplicant.conf``, Zigbee2MQTT and Mosquitto, Minecraft/Valheim/Counter-Strike/ARK game
server configs, start scripts and plugins (Java, Lua), Unity C# and Godot GDScript, Electron,
Qt/C++, WinForms/WPF, VB6 and VB.NET, Delphi/Lazarus, Java Swing, AutoHotkey, and Discord and
Telegram bots run by hobbyists (Python, JavaScript). Halvard Business Systems (the legacy side)
keeps enterprise and CMS code alive: Java EE/Struts/JSP, Spring XML contexts, iBATIS/MyBatis and
Hibernate XML, Ant builds, WebLogic/WebSphere/JBoss/Tomcat configs, .NET Framework
web.config/app.config and classic ASP/VBScript, PHP CMSs (WordPress, Drupal, Joomla, Magento,
PrestaShop) and framework configs (CodeIgniter, CakePHP, Yii, Zend), Perl CGI/DBI, ColdFusion,
Oracle/DB2 batch scripts with sqlplus and the db2 CLI, Access/Jet connection strings and Delphi
data modules. Around both: Dockerfiles, Compose and Helm values, CI (GitHub Actions, GitLab CI,
Jenkins), Jupyter notebooks, Markdown READMEs and wiki tables, and Discord/Telegram chat exports
in English, German, Spanish, French, Portuguese and Polish. Written blind (without seeing the
scanner, its rules or other parts' templates).

Credentials: Wi-Fi passphrases and raw PSKs, MQTT/RCON/admin/database passwords (strong and weak,
also in tests and examples), vendor tokens in their real formats (GitHub with its CRC32 checksum,
GitLab, npm, Discord bot tokens and webhooks, Telegram, Slack, Twitch chat, Stripe, SendGrid,
Mailgun, Twilio, Google, OpenAI, Mapbox secret, FCM server keys, Adafruit IO, Blynk, ThingSpeak,
Pushover, Pushbullet, Tuya, ngrok, Cloudflare, Azure DevOps, Steam Web API, reCAPTCHA secret),
Home Assistant long-lived JWTs, ESPHome API encryption keys, CMS salts and crypt keys (WordPress,
Drupal, Magento, PrestaShop, CakePHP, Yii, CodeIgniter, Joomla), ASP.NET machine keys, Godot
script encryption keys, WebSphere ``{xor}`` passwords (an encoding, not encryption), FileZilla
base64 passwords, private keys (PKCS#1, PKCS#8, EC, OpenSSH), connection strings and URLs with
passwords, Basic auth headers and cloud keys.

Look-alikes sit in the same files under the same key names: ``!secret`` and other references
(environment, Spring/Ant placeholders, Jenkins/GitHub/GitLab variables, web.config transforms,
ColdFusion and Perl variables, C macros), placeholders and redactions, password hashes (phpass,
Drupal 7, bcrypt, md5crypt, MySQL 4.1, Oracle 12c verifiers, Tomcat digests), values encrypted at
rest (WebLogic ``{AES256}``, Jasypt ``ENC(...)``, JBoss ``MASK-``, DPAPI/RSA-protected config
sections), public material (certificates, public and SSH keys, Mapbox ``pk.`` and Stripe ``pk_``
keys, reCAPTCHA site keys, OAuth client ids), identifiers shaped like secrets (Unity ``.meta``
GUIDs, Zigbee IEEE addresses, SteamID64s, Discord snowflakes, Telegram chat ids, Minecraft seeds
and player UUIDs, MSI product codes, fare-card numbers, digests, SRI hashes, git SHAs), UI and
i18n text about passwords, documented example credentials (AWS ``EXAMPLE`` keys, Google's
reCAPTCHA test keys, Slack's sample webhook), credentials on documentation hosts, and test values
that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
import uuid
import zlib

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PW_SYMBOLS = "!#%^*-_=+."
CRYPT64 = "./" + ALNUM


class Tune19Values(evalset.Values):
    """Value generators of the tune19 part; every name starts with ``t19_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "creeper",
            "solder",
            "relay",
            "gecko",
            "bramble",
            "nether",
            "pixel",
            "lantern",
            "kestrel",
            "zigbee",
            "valkyrie",
            "otter",
            "cobalt",
            "mistral",
        ]
        self.users = [
            "halvard",
            "hass",
            "mqtt_user",
            "esphome",
            "mcadmin",
            "wp_halv",
            "cms_app",
            "batch_ora",
            "dbo_legacy",
            "jboss_ds",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t19_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t19_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t19_util_armor(self, label: str, der: bytes) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t19_util_aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def t19_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def t19_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Hv" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(16, ALNUM)
        leet = word.replace("a", "4").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    def t19_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password1!",
                    "halvard123",
                    "admin1234",
                    "Qwerty123!",
                    "letmein1",
                    "minecraft1",
                    "oracle123",
                    "Sommer2023",
                ]
            )
        if shape == 1:
            return "Halvard" + str(self.rng.randrange(2015, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Summer", "Winter", "Spring", "Autumn"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def t19_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def t19_wifi_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return " ".join(self.pick(self.words) for _ in range(3)) + " " + self.s(2, DIGITS)
        if shape == 1:
            return self.s(self.rng.randrange(12, 24), ALNUM + "!#%*-_")
        return self.pick(self.words).capitalize() + "Home" + self.s(4, DIGITS)

    def t19_psk_hex(self) -> str:
        return self.s(64, HEX)

    def t19_rcon_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(self.words) + self.pick(["rcon", "Rcon", "_rc"]) + self.s(3, DIGITS)
        return self.s(self.rng.randrange(12, 25), ALNUM)

    def t19_oracle_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 14), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_"]) + body[cut:] + self.s(2, DIGITS)

    def t19_xor_pw(self) -> str:
        plain = self.t19_pw()
        return "{xor}" + base64.b64encode(bytes(c ^ 0x5F for c in plain.encode())).decode()

    def t19_b64_pw(self) -> str:
        return base64.b64encode(self.t19_pw().encode()).decode()

    def t19_basic_b64(self) -> str:
        user = self.pick([*self.users, "ci-bot", "deploy"])
        return base64.b64encode(f"{user}:{self.t19_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def t19_github(self) -> str:
        return self.t19_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def t19_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def t19_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t19_npm(self) -> str:
        return self.t19_util_crc_token("npm")

    def t19_discord_bot(self) -> str:
        user_id = str(self.rng.randrange(10**17, 2 * 10**18))
        head = base64.b64encode(user_id.encode()).decode().rstrip("=")
        return f"{head}.{self.s(6, URLSAFE)}.{self.s(38, URLSAFE)}"

    def t19_discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 2 * 10**18)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, URLSAFE)}"

    def t19_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t19_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t19_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t19_twitch_oauth(self) -> str:
        return "oauth:" + self.s(30, LOWNUM)

    def t19_stripe(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.rng.choice([24, 99]), ALNUM)

    def t19_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t19_mailgun(self) -> str:
        return f"{self.s(32, HEX)}-{self.s(8, HEX)}-{self.s(8, HEX)}"

    def t19_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t19_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t19_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t19_mapbox_sk(self) -> str:
        claims = {"u": self.pick(self.users), "a": "cl" + self.s(23, LOWNUM)}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return f"sk.{body.decode().rstrip('=')}.{self.s(22, URLSAFE)}"

    def t19_fcm_server_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t19_adafruit(self) -> str:
        return "aio_" + self.s(28, ALNUM)

    def t19_blynk(self) -> str:
        return self.s(32, URLSAFE)

    def t19_thingspeak(self) -> str:
        return self.s(16, UPNUM)

    def t19_pushover(self) -> str:
        return "a" + self.s(29, LOWNUM)

    def t19_pushbullet(self) -> str:
        return "o." + self.s(32, ALNUM)

    def t19_tuya_secret(self) -> str:
        return self.s(32, LOWNUM)

    def t19_ngrok(self) -> str:
        return "2" + self.s(26, ALNUM) + "_" + self.s(21, ALNUM)

    def t19_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def t19_azdo_pat(self) -> str:
        return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")

    def t19_steam_key(self) -> str:
        return self.s(32, HEXU)

    def t19_recaptcha_secret(self) -> str:
        return "6L" + self.s(6, ALNUM) + "AAAAA" + self.s(27, URLSAFE)

    def t19_duckdns(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t19_ha_token(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        iat = 1690000000 + self.rng.randrange(10**7)
        head = part({"alg": "HS256", "typ": "JWT"})
        body = part({"iss": self.s(32, HEX), "iat": iat, "exp": iat + 315360000})
        return f"{head}.{body}.{self.t19_util_b64(32, urlsafe=True, pad=False)}"

    def t19_b64_32(self) -> str:
        return self.t19_util_b64(32)

    def t19_hex32(self) -> str:
        return self.s(32, HEX)

    def t19_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.t19_util_aws_id()}\n"
            f"aws_secret_access_key = {self.t19_util_aws_secret()}"
        )

    def t19_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.t19_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY={self.t19_util_aws_secret()}"
        )

    def t19_azure_storage_key(self) -> str:
        return self.t19_util_b64(64)

    # ------------------------------------------------------------------ positives: CMS/framework
    def t19_wp_salt(self) -> str:
        return self.s(64, ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ ")

    def t19_drupal_salt(self) -> str:
        return self.t19_util_b64(55, urlsafe=True, pad=False)

    def t19_magento_key(self) -> str:
        return self.s(32, HEX)

    def t19_cake_salt(self) -> str:
        return self.s(64, HEX)

    def t19_yii_key(self) -> str:
        return self.s(32, URLSAFE)

    def t19_ps_cookie_key(self) -> str:
        return self.s(64, ALNUM)

    def t19_ci_key(self) -> str:
        return self.pick(["hex2bin('" + self.s(64, HEX) + "')", "'" + self.s(32, ALNUM) + "'"])

    def t19_joomla_secret(self) -> str:
        return self.s(16, ALNUM)

    def t19_machine_key(self) -> str:
        return self.s(128, HEXU)

    def t19_godot_key(self) -> str:
        return self.s(64, HEX)

    # ------------------------------------------------------------------ positives: keys
    def t19_rsa_key(self) -> str:
        der = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + self.rng.randbytes(1180)
        return self.t19_util_armor("RSA PRIVATE KEY", der)

    def t19_pkcs8_key(self) -> str:
        der = (
            b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"
            b"\x05\x00\x04\x82\x04\xa8" + self.rng.randbytes(1180)
        )
        return self.t19_util_armor("PRIVATE KEY", der)

    def t19_ec_key(self) -> str:
        der = (
            b"\x30\x77\x02\x01\x01\x04\x20"
            + self.rng.randbytes(32)
            + b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04"
            + self.rng.randbytes(64)
        )
        return self.t19_util_armor("EC PRIVATE KEY", der)

    def t19_openssh_key(self) -> str:
        pub = self.rng.randbytes(32)
        blob = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
            b"\x00\x00\x00\x01\x00\x00\x00\x33\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
            + pub
            + b"\x00\x00\x00\x90"
            + self.rng.randbytes(4) * 2
            + b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
            + pub
            + b"\x00\x00\x00\x40"
            + self.rng.randbytes(32)
            + pub
            + b"\x00\x00\x00\x0cpi@halvard\x01\x02\x03"
        )
        body = base64.b64encode(blob).decode()
        rows = [body[i : i + 70] for i in range(0, len(body), 70)]
        return (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + "\n".join(rows)
            + "\n-----END OPENSSH PRIVATE KEY-----"
        )

    def t19_gcp_sa_key(self) -> str:
        return self.t19_pkcs8_key().replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ negatives: references
    def t19_ha_secret_ref(self) -> str:
        return self.pick(
            ["!secret wifi_password", "!secret iot_wifi_password", "!secret wifi_pass"]
        )

    def t19_ha_db_ref(self) -> str:
        return self.pick(
            ["!secret influxdb_password", "!secret influx_pass", "!env_var INFLUX_PASSWORD"]
        )

    def t19_c_ref(self) -> str:
        return self.pick(["SECRET_PASS", "WIFI_PASSWORD", "SECRET_WIFI_PASS"])

    def t19_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DISCORD_TOKEN"]',
                'os.getenv("DISCORD_TOKEN")',
                'config["discord"]["token"]',
            ]
        )

    def t19_js_ref(self) -> str:
        return self.pick(
            ["process.env.DISCORD_TOKEN", "config.token", "process.env['BOT_TOKEN']", "env.TOKEN"]
        )

    def t19_php_ref(self) -> str:
        return self.pick(
            ["getenv('DB_PASSWORD')", "$_SERVER['DB_PASS']", "$_ENV['MYSQL_PASSWORD']", "DB_PASS"]
        )

    def t19_spring_ref(self) -> str:
        return self.pick(
            ["${jdbc.password}", "${db.password}", "${env.ORACLE_PASSWORD}", "#{dbProps.password}"]
        )

    def t19_dotnet_ref(self) -> str:
        return self.pick(["#{DbPassword}", "__DB_PASSWORD__", "$(DbPassword)", "[DB_PASSWORD]"])

    def t19_shell_ref(self) -> str:
        return self.pick(
            [
                '"$(cat /etc/halvard/ora.pw)"',
                '"$1"',
                '"${CTM_DB_PASSWORD:?missing}"',
                '"$(vault kv get -field=password secret/legacy/db)"',
            ]
        )

    def t19_perl_ref(self) -> str:
        return self.pick(['$ENV{"DB_PASS"}', "$ENV{ORACLE_PW}", "$cfg->{db}{password}", "$dbpass"])

    def t19_cf_ref(self) -> str:
        return self.pick(
            ["#application.dsnPassword#", "#server.system.environment.DB_PASS#", "#request.dbpw#"]
        )

    def t19_vb_ref(self) -> str:
        return self.pick(
            [
                'Environ("HALV_DB_PASS")',
                'ConfigurationManager.AppSettings("DbPassword")',
                "My.Settings.DbPassword",
                'GetSetting("Halvard", "DB", "Password")',
            ]
        )

    def t19_delphi_ref(self) -> str:
        return self.pick(
            ["GetEnvironmentVariable('HALV_DB_PASS')", "FConfig.Password", "edtPassword.Text"]
        )

    def t19_java_ref(self) -> str:
        return self.pick(
            [
                "password.getPassword()",
                'Secrets.read("ordertool.db")',
                'System.getenv("ORDER_DB_PASS").toCharArray()',
            ]
        )

    def t19_ahk_ref(self) -> str:
        return self.pick(
            ["cred.password", 'EnvGet("KIOSK_PASS")', 'IniRead("kiosk.ini", "auth", "pass")']
        )

    def t19_ant_ref(self) -> str:
        return self.pick(
            ["${env.LAGERWEB_DB_PASSWORD}", "${lagerweb.db.password}", "${sql.password.prod}"]
        )

    def t19_cert_pw_ref(self) -> str:
        return self.pick(
            ["${keystore.password}", "${env.TOMCAT_KEYSTORE_PASS}", "${KEYSTORE_PASS}"]
        )

    def t19_form_field(self) -> str:
        return self.pick(["password", "PASSORD_HASH", "passord", "pwd_hash"])

    def t19_jenkins_ref(self) -> str:
        return self.pick(["$JBOSS_PASS", "${JBOSS_PASS}", "\\$JBOSS_PASS"])

    def t19_redacted(self) -> str:
        return self.pick(["********", "[REDACTED]", "<redacted>", "***", "xxxxxx"])

    def t19_tomcat_ref(self) -> str:
        return self.pick(
            ["${ORDREWEB_DB_PASSWORD}", "${ordreweb.db.password}", "${env.ORDREWEB_DB_PASSWORD}"]
        )

    def t19_bat_ref(self) -> str:
        return self.pick(["%ORA_SYS_PW%", "%1", "!SYSPW!"])

    def t19_tmpl_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.rcon.password }}",
                "{{ rcon_password }}",
                "${RCON_PASSWORD}",
                "{{ lookup('env', 'RCON_PASSWORD') }}",
            ]
        )

    def t19_pio_ref(self) -> str:
        return self.pick(["${sysenv.MQTT_PASS}", "${sysenv.MQTT_PASSWORD}"])

    def t19_compose_ref(self) -> str:
        return self.pick(
            [
                "${INFLUX_PASSWORD}",
                "${INFLUXDB_ADMIN_PASSWORD:?set in .env}",
                "${INFLUX_PASSWORD:-}",
            ]
        )

    def t19_ark_ref(self) -> str:
        return self.pick(["{{ ark_admin_password }}", "{{ vault_ark_admin_password }}"])

    def t19_gha_token_ref(self) -> str:
        return self.pick(
            ["${{ secrets.GH_TOKEN }}", "${{ secrets.GITHUB_TOKEN }}", "${{ secrets.RELEASE_PAT }}"]
        )

    def t19_gha_wifi_ref(self) -> str:
        return self.pick(
            ["${{ secrets.WIFI_PASS }}", "${{ secrets.IOT_WIFI_PASSWORD }}", "${{ env.WIFI_PASS }}"]
        )

    def t19_gitlab_ref(self) -> str:
        return self.pick(["$CI_DEPLOY_PASSWORD", "$CI_JOB_TOKEN", "${PROD_DEPLOY_TOKEN}"])

    def t19_qt_ref(self) -> str:
        return self.pick(
            [
                'settings.value("db/password").toString()',
                'QString::fromLocal8Bit(qgetenv("KIOSK_DB_PASS"))',
                "KioskSecrets::dbPassword()",
            ]
        )

    def t19_upy_ref(self) -> str:
        return self.pick(["secrets.MQTT_PASSWORD", "secrets.MQTT_PASS", "cfg['mqtt_pass']"])

    def t19_nb_ref(self) -> str:
        return self.pick(
            [
                'os.environ["INFLUX_PASSWORD"]',
                'os.getenv("INFLUX_PASSWORD")',
                "getpass.getpass('InfluxDB password: ')",
            ]
        )

    def t19_secret_file(self) -> str:
        return self.pick(["/run/secrets/db_password", "/run/secrets/kunde_db_password"])

    def t19_placeholder(self) -> str:
        return self.pick(
            [
                "YOUR_WIFI_PASSWORD",
                "changeme",
                "********",
                "<password>",
                "REPLACE_ME",
                "xxxxxxxx",
                "your-password-here",
                "<redacted>",
                "CHANGE_THIS",
                "",
            ]
        )

    def t19_token_placeholder(self) -> str:
        return self.pick(
            [
                "YOUR_BOT_TOKEN",
                "<discord-bot-token>",
                "your-api-key-here",
                "INSERT_TOKEN_HERE",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "<REDACTED>",
                "TOKEN_GOES_HERE",
            ]
        )

    def t19_fake_test(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "NOT_A_REAL_PASSWORD",
                "dummy-api-key-0000",
                "test-only-not-secret",
                "fake_password_do_not_use",
                "FAKE-KEY-FOR-UNIT-TESTS",
            ]
        )

    def t19_wp_default(self) -> str:
        return "put your unique phrase here"

    def t19_autogen(self) -> str:
        return self.pick(["AutoGenerate,IsolateApps", "AutoGenerate"])

    def t19_example_aws(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AKIAI44QH8DHBEXAMPLE\nje7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def t19_example_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://discord.com/api/webhooks/000000000000000000/your-webhook-token",
                "https://discord.com/api/webhooks/{webhook.id}/{webhook.token}",
            ]
        )

    def t19_recaptcha_test(self) -> str:
        return self.pick(
            [
                "6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI",
                "6LeIxAcTAAAAAGG-vFI1TnRWxMZNFuojJ4WifJWe",
            ]
        )

    def t19_doc_url(self) -> str:
        return self.pick(
            [
                "mysql://wp:password@db.example.com:3306/wordpress",
                "mqtt://iot:secret@broker.example.org:1883",
                "postgres://app:changeme@pg.test:5432/app",
                "amqp://guest:guest@mq.invalid:5672/",
                "jdbc:oracle:thin:scott/tiger@db.example.com:1521/ORCL",
            ]
        )

    def t19_i18n(self) -> str:
        return self.pick(
            [
                "Passwort vergessen?",
                "Bitte WLAN-Passwort eingeben",
                "Introduzca la contraseña del servidor",
                "Mot de passe du réseau Wi-Fi",
                "Digite a senha do administrador",
                "Podaj hasło RCON",
                "Wrong password, try again",
                "パスワードを入力してください",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes, encrypted
    def t19_phpass(self) -> str:
        return "$P$B" + self.s(31, CRYPT64)

    def t19_drupal_hash(self) -> str:
        return "$S$E" + self.s(51, CRYPT64)

    def t19_bcrypt(self) -> str:
        return self.pick(["$2y$10$", "$2a$12$", "$2b$10$"]) + self.s(53, CRYPT64)

    def t19_md5crypt(self) -> str:
        return f"$1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def t19_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def t19_joomla_hash(self) -> str:
        return f"{self.s(32, HEX)}:{self.s(32, ALNUM)}"

    def t19_oracle_verifier(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def t19_tomcat_digest(self) -> str:
        return f"{self.s(32, HEX)}$20000${self.s(64, HEX)}"

    def t19_sha256_hex(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t19_md5_hex(self) -> str:
        return hashlib.md5(self.rng.randbytes(24)).hexdigest()

    def t19_weblogic_enc(self) -> str:
        return "{AES256}" + self.t19_util_b64(48)

    def t19_jasypt(self) -> str:
        return f"ENC({self.t19_util_b64(32)})"

    def t19_jboss_mask(self) -> str:
        return "MASK-" + self.s(22, ALNUM + "/+")

    def t19_dpapi_cipher(self) -> str:
        return self.t19_util_b64(256)

    def t19_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t19_sri(self) -> str:
        return "sha512-" + self.t19_util_b64(64)

    # ------------------------------------------------------------------ negatives: public material
    def t19_cert(self) -> str:
        der = b"\x30\x82\x03\x5a\x30\x82\x02\x42\xa0\x03\x02\x01\x02" + self.rng.randbytes(840)
        return self.t19_util_armor("CERTIFICATE", der)

    def t19_public_key(self) -> str:
        der = (
            b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
            b"\x03\x82\x01\x0f\x00" + self.rng.randbytes(270)
        )
        return self.t19_util_armor("PUBLIC KEY", der)

    def t19_ssh_pub(self) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        who = self.pick(["pi@octopi", "root@openwrt", "halvard@laptop", "builder@ci"])
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}"

    def t19_ssh_fpr(self) -> str:
        return "SHA256:" + self.t19_util_b64(32, pad=False)

    def t19_mapbox_pk(self) -> str:
        claims = {"u": self.pick(self.users), "a": "cl" + self.s(23, LOWNUM)}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return f"pk.{body.decode().rstrip('=')}.{self.s(22, URLSAFE)}"

    def t19_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_test_"]) + self.s(99, ALNUM)

    def t19_recaptcha_site(self) -> str:
        return "6L" + self.s(6, ALNUM) + "AAAAA" + self.s(27, URLSAFE)

    def t19_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    # ------------------------------------------------------------------ negatives: identifiers
    def t19_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t19_guid_upper(self) -> str:
        return "{" + self.t19_uuid().upper() + "}"

    def t19_unity_guid(self) -> str:
        return self.s(32, HEX)

    def t19_git_sha(self) -> str:
        return self.s(40, HEX)

    def t19_ieee(self) -> str:
        return self.pick(["0x00158d00", "0x00124b00", "0xa4c13800", "0x84fd27ff"]) + self.s(8, HEX)

    def t19_steamid(self) -> str:
        return "7656119" + self.s(10, DIGITS)

    def t19_snowflake(self) -> str:
        return str(self.rng.randrange(10**17, 2 * 10**18))

    def t19_chat_id(self) -> str:
        return "-100" + self.s(10, DIGITS)

    def t19_mc_seed(self) -> str:
        return str(self.rng.randrange(-(2**63), 2**63))

    def t19_fare_card(self) -> str:
        digits = "3086" + self.s(12, DIGITS)
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))

    def t19_mac(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(6))

    def t19_mosquitto_hash(self) -> str:
        salt = self.t19_util_b64(12)
        return f"$7$101${salt}${self.t19_util_b64(64)}"

    def t19_nodered_enc(self) -> str:
        return self.s(32, HEX) + self.t19_util_b64(self.rng.randrange(90, 180))

    def t19_chip_id(self) -> str:
        return self.s(12, HEXU)


VALUES = Tune19Values


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _pos(path: str, kind: str, text: str) -> evalset.Template:
    return (path, _dedent(text), kind, True)


def _neg(path: str, kind: str, text: str) -> evalset.Template:
    return (path, _dedent(text), kind, False)


# ---------------------------------------------------------------------- embedded, IoT, home automation
_IOT: list[evalset.Template] = [
    _pos(
        "firmware/greenhouse-node/include/secrets.h",
        "t19_wifi_psk",
        r"""
#pragma once
// Greenhouse node credentials. This file is listed in .gitignore... it was, until the
// PlatformIO migration moved it out of src/.

#define SECRET_SSID      "halvard-greenhouse"
#define SECRET_PASS      "{V}"

#define SECRET_SSID_FALLBACK "halvard-shed"
#define SECRET_PASS_FALLBACK "{V2}"

#define MQTT_HOST        "192.168.40.10"
#define MQTT_PORT        1883
#define OTA_HOSTNAME     "gh-node-01"
""",
    ),
    _neg(
        "firmware/greenhouse-node/include/secrets.example.h",
        "t19_placeholder",
        r"""
#pragma once
// Copy this file to secrets.h and fill in your own network.
// secrets.h is ignored by git; never commit it.

#define SECRET_SSID      "your-ssid"
#define SECRET_PASS      "{V}"

#define SECRET_SSID_FALLBACK ""
#define SECRET_PASS_FALLBACK "{V2}"

#define MQTT_HOST        "192.168.1.10"
#define MQTT_PORT        1883
""",
    ),
    _neg(
        "firmware/greenhouse-node/src/main.cpp",
        "t19_c_ref",
        r"""
#include <Arduino.h>
#include <WiFi.h>
#include <PubSubClient.h>
#include "secrets.h"

WiFiClient net;
PubSubClient mqtt(net);

void connectWifi() {
  WiFi.mode(WIFI_STA);
  WiFi.begin(SECRET_SSID, {V});
  uint8_t tries = 0;
  while (WiFi.status() != WL_CONNECTED && tries++ < 40) {
    delay(250);
    Serial.print('.');
  }
  Serial.printf("\nIP: %s\n", WiFi.localIP().toString().c_str());
}

void connectMqtt() {
  mqtt.setServer(MQTT_HOST, MQTT_PORT);
  while (!mqtt.connect("gh-node-01", "greenhouse", MQTT_PASS)) {
    delay(2000);
  }
}
""",
    ),
    _pos(
        "firmware/doorbell-cam/doorbell-cam.ino",
        "t19_pw",
        r"""
#include "esp_camera.h"
#include <WiFi.h>
#include <PubSubClient.h>
#include <ArduinoOTA.h>

const char* ssid = "Halvard-IoT";
const char* password = "{V}";

const char* mqtt_server = "10.0.40.5";
const char* mqtt_user = "doorbell";
const char* mqtt_pass = "{V2}";

WiFiClient espClient;
PubSubClient client(espClient);

void setup() {
  Serial.begin(115200);
  WiFi.begin(ssid, password);
  while (WiFi.status() != WL_CONNECTED) { delay(500); }
  ArduinoOTA.setHostname("doorbell-cam");
  ArduinoOTA.setPassword("{V3}");
  ArduinoOTA.begin();
  client.setServer(mqtt_server, 1883);
}
""",
    ),
    _neg(
        "firmware/doorbell-cam/ota.cpp",
        "t19_md5_hex",
        r"""
#include <ArduinoOTA.h>

// The OTA password is stored as an MD5 hash so the plain text never ships in the
// firmware image; espota.py hashes what you type with --auth.
static const char *OTA_PASSWORD_HASH = "{V}";

void setupOta() {
  ArduinoOTA.setHostname("doorbell-cam");
  ArduinoOTA.setPasswordHash(OTA_PASSWORD_HASH);
  ArduinoOTA.onStart([]() { Serial.println("OTA start"); });
  ArduinoOTA.onEnd([]() { Serial.println("\nOTA end"); });
  ArduinoOTA.onError([](ota_error_t error) {
    Serial.printf("OTA error[%u]\n", error);
  });
  ArduinoOTA.begin();
}
""",
    ),
    _pos(
        "firmware/weather-station/src/thingspeak.cpp",
        "t19_thingspeak",
        r"""
#include <WiFi.h>
#include <ThingSpeak.h>

// Channel 2214783 "Halvard roof weather"
static const unsigned long CHANNEL_ID = 2214783;
static const char *WRITE_API_KEY = "{V}";

WiFiClient tsClient;

void publishReadings(float t, float h, float p) {
  ThingSpeak.begin(tsClient);
  ThingSpeak.setField(1, t);
  ThingSpeak.setField(2, h);
  ThingSpeak.setField(3, p);
  int code = ThingSpeak.writeFields(CHANNEL_ID, WRITE_API_KEY);
  if (code != 200) {
    Serial.printf("ThingSpeak error %d\n", code);
  }
}
""",
    ),
    _pos(
        "firmware/plant-monitor/plant-monitor.ino",
        "t19_blynk",
        r"""
#define BLYNK_TEMPLATE_ID   "TMPL4kH2x9QaZ"
#define BLYNK_TEMPLATE_NAME "Plant Monitor"
#define BLYNK_AUTH_TOKEN    "{V}"

#define BLYNK_PRINT Serial
#include <WiFi.h>
#include <BlynkSimpleEsp32.h>

#include "wifi_secrets.h"  // SECRET_SSID, SECRET_PASS (not committed)

char ssid[] = SECRET_SSID;
char pass[] = SECRET_PASS;

BlynkTimer timer;

void sendMoisture() {
  int raw = analogRead(34);
  Blynk.virtualWrite(V1, map(raw, 4095, 1500, 0, 100));
}

void setup() {
  Blynk.begin(BLYNK_AUTH_TOKEN, ssid, pass);
  timer.setInterval(30000L, sendMoisture);
}

void loop() { Blynk.run(); timer.run(); }
""",
    ),
    _pos(
        "firmware/aquarium/config.py",
        "t19_adafruit",
        r"""
# MicroPython config for the aquarium controller (ESP32, MicroPython 1.22)
from wifi_secrets import WIFI_PASS, WIFI_SSID  # noqa: F401  (kept off the repo)

AIO_SERVER = "io.adafruit.com"
AIO_PORT = 1883
AIO_USERNAME = "halvardmakers"
AIO_KEY = "{V}"

FEED_TEMP = AIO_USERNAME + "/feeds/aquarium.temp"
FEED_PH = AIO_USERNAME + "/feeds/aquarium.ph"
PUBLISH_EVERY_S = 60
""",
    ),
    _neg(
        "firmware/micropython/main.py",
        "t19_upy_ref",
        r"""
# main.py -- reads the sensor and publishes to MQTT
import machine
import time
from umqtt.simple import MQTTClient

import secrets

client = MQTTClient(
    client_id=machine.unique_id(),
    server=secrets.MQTT_HOST,
    user=secrets.MQTT_USER,
    password={V},
    keepalive=60,
)
client.connect()
adc = machine.ADC(machine.Pin(34))
while True:
    client.publish(b"workshop/light", str(adc.read_u16()).encode())
    time.sleep(30)
""",
    ),
    _pos(
        "firmware/micropython/webrepl_cfg.py",
        "t19_weak_pw",
        r"""
PASS = '{V}'
""",
    ),
    _pos(
        "firmware/energy-meter/platformio.ini",
        "t19_pw",
        r"""
; PlatformIO Project Configuration File
[platformio]
default_envs = esp32dev

[env]
framework = arduino
monitor_speed = 115200
lib_deps =
    knolleary/PubSubClient@^2.8
    bblanchon/ArduinoJson@^7.0.4

[env:esp32dev]
platform = espressif32@6.6.0
board = esp32dev
build_flags =
    -DWIFI_SSID=\"halvard-iot\"
    -DWIFI_PASS=\"{V}\"
    -DMQTT_PASS=\"{V2}\"

[env:esp32dev_ota]
extends = env:esp32dev
upload_protocol = espota
upload_port = energy-meter.local
upload_flags =
    --auth={V3}
""",
    ),
    _neg(
        "firmware/energy-meter/platformio_ci.ini",
        "t19_pio_ref",
        r"""
; Used by the GitHub Actions build; the secrets come from the runner environment.
[env:esp32dev_ci]
platform = espressif32@6.6.0
board = esp32dev
framework = arduino
build_flags =
    -DWIFI_SSID=\"${sysenv.WIFI_SSID}\"
    -DWIFI_PASS=\"${sysenv.WIFI_PASS}\"
    -DMQTT_PASS=\"{V}\"
upload_protocol = espota
upload_flags =
    --auth=${sysenv.OTA_PASSWORD}
""",
    ),
    _neg(
        "firmware/energy-meter/platformio.lock.json",
        "t19_sha256_hex",
        r"""
{
  "lib_deps": [
    {
      "name": "PubSubClient",
      "owner": "knolleary",
      "version": "2.8.0",
      "checksum": "sha256:{V}"
    },
    {
      "name": "ArduinoJson",
      "owner": "bblanchon",
      "version": "7.0.4",
      "checksum": "sha256:{V2}"
    }
  ]
}
""",
    ),
    _pos(
        "esphome/living-room-sensor.yaml",
        "t19_b64_32",
        r"""
esphome:
  name: living-room-sensor
  friendly_name: Living room sensor

esp32:
  board: esp32dev

logger:

api:
  encryption:
    key: "{V}"

ota:
  - platform: esphome
    password: !secret ota_password

wifi:
  ssid: !secret wifi_ssid
  password: !secret wifi_password

sensor:
  - platform: dht
    pin: GPIO4
    temperature:
      name: "Temperature"
    humidity:
      name: "Humidity"
    update_interval: 60s
""",
    ),
    _neg(
        "esphome/garage-door.yaml",
        "t19_ha_secret_ref",
        r"""
esphome:
  name: garage-door
  friendly_name: Garage door

esp8266:
  board: d1_mini

api:
  encryption:
    key: !secret garage_api_key

ota:
  - platform: esphome
    password: !secret ota_password

wifi:
  ssid: !secret wifi_ssid
  password: {V}
  ap:
    ssid: "Garage-Door Fallback"
    password: !secret fallback_ap_password

switch:
  - platform: gpio
    pin: D1
    id: relay
    name: "Garage door relay"
""",
    ),
    _pos(
        "esphome/secrets.yaml",
        "t19_wifi_psk",
        r"""
# ESPHome secrets -- shared by every node in this folder
wifi_ssid: "halvard-iot"
wifi_password: "{V}"
fallback_ap_password: "{V2}"
ota_password: "{V3}"
""",
    ),
    _pos(
        "homeassistant/secrets.yaml",
        "t19_pw",
        r"""
# Use this file to store secrets like usernames and passwords.
# Learn more at https://www.home-assistant.io/docs/configuration/secrets/
home_latitude: 59.91
home_longitude: 10.75
mqtt_password: "{V}"
alarm_code: "4821"
nas_password: "{V2}"
influxdb_password: "{V3}"
""",
    ),
    _neg(
        "homeassistant/configuration.yaml",
        "t19_ha_db_ref",
        r"""
# Loads default set of integrations. Do not remove.
default_config:

homeassistant:
  name: Halvard House
  latitude: !secret home_latitude
  longitude: !secret home_longitude
  unit_system: metric
  time_zone: Europe/Oslo

influxdb:
  api_version: 1
  host: 192.168.40.12
  port: 8086
  database: homeassistant
  username: hass
  password: {V}
  max_retries: 3

shell_command:
  nas_wake: "wakeonlan 00:11:32:AA:BB:CC"

automation: !include automations.yaml
script: !include scripts.yaml
""",
    ),
    _pos(
        "homeassistant/rest_commands.yaml",
        "t19_ha_token",
        r"""
# Called from the workshop's Home Assistant to toggle scenes on the house instance.
rest_command:
  house_scene_evening:
    url: "http://192.168.40.20:8123/api/services/scene/turn_on"
    method: post
    headers:
      authorization: "Bearer {V}"
      content-type: "application/json"
    payload: '{"entity_id": "scene.evening"}'
  house_scene_away:
    url: "http://192.168.40.20:8123/api/services/scene/turn_on"
    method: post
    headers:
      authorization: "Bearer {V}"
      content-type: "application/json"
    payload: '{"entity_id": "scene.away"}'
""",
    ),
    _neg(
        "homeassistant/.storage/core.config_entries",
        "t19_uuid",
        r"""
{
  "version": 1,
  "minor_version": 4,
  "key": "core.config_entries",
  "data": {
    "entries": [
      {
        "entry_id": "{V}",
        "domain": "mqtt",
        "title": "192.168.40.10",
        "source": "user",
        "unique_id": null
      },
      {
        "entry_id": "{V2}",
        "domain": "esphome",
        "title": "living-room-sensor",
        "source": "zeroconf",
        "unique_id": "a4:cf:12:9b:3e:10"
      }
    ]
  }
}
""",
    ),
    _pos(
        "tasmota/backlog-plugs.txt",
        "t19_pw",
        r"""
# Pasted into the Tasmota console of every new smart plug (Gosund SP111)
Backlog SSID1 halvard-iot; Password1 {V}; SSID2 halvard-shed; Password2 {V2}
Backlog MqttHost 192.168.40.10; MqttPort 1883; MqttUser plugs; MqttPassword {V3}
Backlog Topic plug_%06X; FullTopic %prefix%/%topic%/; SetOption19 1
Backlog WebPassword {V4}; TimeZone 99; PowerOnState 3
""",
    ),
    _neg(
        "tasmota/status-dump.txt",
        "t19_mac",
        r"""
14:02:11.803 CMD: Status 5
14:02:11.812 MQT: stat/plug_3A9F21/STATUS5 = {"StatusNET":{"Hostname":"plug-3A9F21","IPAddress":"192.168.40.61","Gateway":"192.168.40.1","Subnetmask":"255.255.255.0","DNSServer1":"192.168.40.1","Mac":"{V}","Webserver":2,"HTTP_API":1,"WifiConfig":4,"WifiPower":17.0}}
14:02:15.220 CMD: Status 1
14:02:15.229 MQT: stat/plug_3A9F21/STATUS1 = {"StatusPRM":{"Baudrate":115200,"GroupTopic":"tasmotas","OtaUrl":"http://ota.tasmota.com/tasmota/release/tasmota.bin.gz","RestartReason":"Software/System restart","BootCount":31,"CfgHolder":4617,"SaveCount":88}}
14:02:20.118 CMD: MqttPassword
14:02:20.126 MQT: stat/plug_3A9F21/RESULT = {"MqttPassword":"****"}
14:02:24.447 CMD: Status 11
14:02:24.455 MQT: stat/plug_3A9F21/STATUS11 = {"StatusSTS":{"Time":"2024-03-11T14:02:24","Uptime":"3T02:11:40","Heap":25,"Wifi":{"AP":1,"SSId":"halvard-iot","BSSId":"{V2}","Channel":6,"RSSI":82}}}
""",
    ),
    _pos(
        "zigbee2mqtt/data/configuration.yaml",
        "t19_pw",
        r"""
homeassistant: true
permit_join: false
frontend:
  port: 8080
  auth_token: {V2}
mqtt:
  base_topic: zigbee2mqtt
  server: mqtt://192.168.40.10:1883
  user: z2m
  password: {V}
serial:
  port: /dev/serial/by-id/usb-ITead_Sonoff_Zigbee_3.0_USB_Dongle_Plus-if00-port0
  adapter: zstack
advanced:
  channel: 15
  log_level: info
devices:
  '0x00158d0008a1b2c3':
    friendly_name: hallway_motion
""",
    ),
    _neg(
        "zigbee2mqtt/data/devices.yaml",
        "t19_ieee",
        r"""
'{V}':
  friendly_name: hallway_motion
  retain: false
'{V2}':
  friendly_name: kitchen_plug
  retain: true
  optimistic: true
'{V3}':
  friendly_name: bathroom_humidity
  occupancy_timeout: 120
'{V4}':
  friendly_name: front_door_contact
""",
    ),
    _pos(
        "mosquitto/bridge.conf",
        "t19_url_pw",
        r"""
# Bridge the workshop broker to the house broker over the VPN
connection workshop-to-house
address 10.8.0.1:8883
bridge_protocol_version mqttv311
bridge_cafile /mosquitto/certs/house-ca.crt
remote_clientid workshop-bridge
remote_username bridge
remote_password {V}
try_private true
cleansession false
topic sensors/# out 1 workshop/ house/
topic cmd/# in 1 house/ workshop/
""",
    ),
    _neg(
        "mosquitto/passwd",
        "t19_mosquitto_hash",
        r"""
z2m:{V}
doorbell:{V2}
plugs:{V3}
""",
    ),
    _pos(
        "openwrt/etc/config/wireless",
        "t19_wifi_psk",
        r"""
config wifi-device 'radio0'
	option type 'mac80211'
	option path 'platform/soc/18000000.wifi'
	option channel '36'
	option band '5g'
	option htmode 'HE80'
	option country 'NO'

config wifi-iface 'default_radio0'
	option device 'radio0'
	option network 'lan'
	option mode 'ap'
	option ssid 'halvard-home'
	option encryption 'sae-mixed'
	option key '{V}'

config wifi-iface 'iot_radio1'
	option device 'radio1'
	option network 'iot'
	option mode 'ap'
	option ssid 'halvard-iot'
	option encryption 'psk2'
	option key '{V2}'
	option isolate '1'
""",
    ),
    _pos(
        "openwrt/etc/config/ddns",
        "t19_duckdns",
        r"""
config ddns 'global'
	option ddns_dateformat '%F %R'
	option ddns_loglines '250'

config service 'duckdns_v4'
	option service_name 'duckdns.org'
	option use_ipv6 '0'
	option enabled '1'
	option lookup_host 'halvard-home.duckdns.org'
	option domain 'halvard-home'
	option username 'NA'
	option password '{V}'
	option ip_source 'network'
	option ip_network 'wan'
	option interface 'wan'
""",
    ),
    _neg(
        "openwrt/etc/dropbear/authorized_keys",
        "t19_ssh_pub",
        r"""
{V}
{V2}
""",
    ),
    _neg(
        "openwrt/etc/shadow",
        "t19_md5crypt",
        r"""
root:{V}:19632:0:99999:7:::
daemon:*:0:0:99999:7:::
ftp:*:0:0:99999:7:::
network:*:0:0:99999:7:::
nobody:*:0:0:99999:7:::
dnsmasq:x:0:0:99999:7:::
logd:x:0:0:99999:7:::
ubus:x:0:0:99999:7:::
""",
    ),
    _pos(
        "raspberrypi/boot/wpa_supplicant.conf",
        "t19_psk_hex",
        r"""
ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
update_config=1
country=NO

network={
    ssid="halvard-home"
    psk={V}
    key_mgmt=WPA-PSK
    priority=10
}

network={
    ssid="halvard-workshop"
    psk={V2}
    key_mgmt=WPA-PSK
    priority=5
}
""",
    ),
    _neg(
        "raspberrypi/boot/wpa_supplicant.conf.sample",
        "t19_placeholder",
        r"""
ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
update_config=1
country=NO

# Fill in your network and rename this file to wpa_supplicant.conf
network={
    ssid="YOUR_SSID"
    psk="{V}"
    key_mgmt=WPA-PSK
}
""",
    ),
    _pos(
        "iot/tuya-bridge/devices.json",
        "t19_tuya_secret",
        r"""
{
  "cloud": {
    "region": "eu",
    "access_id": "kq8d3mx2vr7yp4tn5wca",
    "access_secret": "{V}"
  },
  "devices": [
    {
      "name": "desk lamp",
      "id": "bf3a91c0d27e5f4b18xkqz",
      "ip": "192.168.40.71",
      "version": "3.3"
    },
    {
      "name": "fan",
      "id": "bf82c4e19a0d7b3f56mnpw",
      "ip": "192.168.40.72",
      "version": "3.4"
    }
  ]
}
""",
    ),
    _pos(
        "iot/notify/pushover_alerts.py",
        "t19_pushover",
        r"""
'''Push a phone alert when the freezer in the workshop gets warm.'''
import http.client
import urllib.parse

PUSHOVER_APP_TOKEN = "{V}"
PUSHOVER_USER_KEY = open("/etc/halvard/pushover_user").read().strip()


def alert(message: str, priority: int = 1) -> None:
    conn = http.client.HTTPSConnection("api.pushover.net:443")
    conn.request(
        "POST",
        "/1/messages.json",
        urllib.parse.urlencode(
            {"token": PUSHOVER_APP_TOKEN, "user": PUSHOVER_USER_KEY, "message": message, "priority": priority}
        ),
        {"Content-type": "application/x-www-form-urlencoded"},
    )
    conn.getresponse()
""",
    ),
    _pos(
        "iot/notify/pushbullet.sh",
        "t19_pushbullet",
        r"""
#!/bin/sh
# Called by the UPS daemon (upsmon NOTIFYCMD) when the NAS switches to battery.
TOKEN='{V}'
TITLE="UPS: $UPSNAME"
BODY="$*"

curl -s -u "$TOKEN:" https://api.pushbullet.com/v2/pushes \
  -H 'Content-Type: application/json' \
  -d "{\"type\": \"note\", \"title\": \"$TITLE\", \"body\": \"$BODY\"}" >/dev/null
""",
    ),
    _pos(
        "iot/ifttt/garden_trigger.ino",
        "t19_fcm_server_key",
        r"""
#include <WiFi.h>
#include <HTTPClient.h>

// Legacy FCM server key for the "Halvard Garden" Android app
const char* FCM_SERVER_KEY = "{V}";
const char* DEVICE_TOPIC = "/topics/garden";

void notifyPhones(const String& text) {
  HTTPClient http;
  http.begin("https://fcm.googleapis.com/fcm/send");
  http.addHeader("Content-Type", "application/json");
  http.addHeader("Authorization", String("key=") + FCM_SERVER_KEY);
  String body = String("{\"to\":\"") + DEVICE_TOPIC + "\",\"notification\":{\"title\":\"Garden\",\"body\":\"" + text + "\"}}";
  int code = http.POST(body);
  Serial.printf("FCM %d\n", code);
  http.end();
}
""",
    ),
    _neg(
        "firmware/shared/device_ids.h",
        "t19_chip_id",
        r"""
#pragma once
// Known boards and their eFuse chip ids (ESP.getEfuseMac()), used to pick a config at boot.
// These are hardware serials, printed on the label sheet in the drawer.
struct KnownBoard { const char *chipId; const char *role; };

static const KnownBoard KNOWN_BOARDS[] = {
  { "{V}", "greenhouse" },
  { "{V2}", "doorbell" },
  { "{V3}", "energy-meter" },
  { "{V4}", "aquarium" },
};
""",
    ),
    _neg(
        "firmware/lora-gateway/README.md",
        "t19_i18n",
        r"""
# LoRa gateway (TTGO T-Beam)

Serves a small captive portal on first boot so the gateway can be put on any network.

| Screen | String key | English | Deployed locale text |
|---|---|---|---|
| Wi-Fi | `wifi.password.label` | Wi-Fi password | {V} |
| Admin | `admin.password.label` | Admin password | {V2} |
| Errors | `error.password.wrong` | Wrong password | {V3} |

The portal never shows a stored password back; the fields are always empty when loaded.
Translations live in `data/i18n/*.json` and are uploaded with `pio run -t uploadfs`.
""",
    ),
    _neg(
        "docker/homelab/docker-compose.override.example.yml",
        "t19_compose_ref",
        r"""
# Copy to docker-compose.override.yml; values come from .env (not committed).
services:
  influxdb:
    environment:
      DOCKER_INFLUXDB_INIT_PASSWORD: "{V}"
  grafana:
    environment:
      GF_SECURITY_ADMIN_PASSWORD: "${GRAFANA_ADMIN_PASSWORD}"
      GF_SMTP_PASSWORD: ${SMTP_PASSWORD:-}
""",
    ),
    _pos(
        "docker/homelab/.env",
        "t19_ngrok",
        r"""
COMPOSE_PROJECT_NAME=homelab
TZ=Europe/Oslo
PUID=1000
PGID=1000
NGROK_AUTHTOKEN={V}
NGROK_REGION=eu
""",
    ),
    _neg(
        "nodered/flows_cred.json",
        "t19_nodered_enc",
        r"""
{"$":"{V}"}
""",
    ),
]

# ---------------------------------------------------------------------- game servers, game code, bots
_GAMES: list[evalset.Template] = [
    _pos(
        "gameservers/minecraft/survival/server.properties",
        "t19_rcon_pw",
        r"""
#Minecraft server properties
#Sat Mar 09 18:22:41 CET 2024
enable-jmx-monitoring=false
rcon.port=25575
level-seed=
gamemode=survival
enable-command-block=false
enable-query=false
level-name=world
motd=Halvard Makers Survival
pvp=true
difficulty=normal
network-compression-threshold=256
max-players=20
online-mode=true
enable-rcon=true
rcon.password={V}
white-list=true
enforce-whitelist=true
view-distance=10
server-port=25565
""",
    ),
    _neg(
        "gameservers/minecraft/creative/server.properties",
        "t19_mc_seed",
        r"""
#Minecraft server properties
#Sun Apr 14 10:02:07 CEST 2024
rcon.port=25575
level-seed={V}
gamemode=creative
level-name=creative
motd=Halvard Makers Creative
pvp=false
difficulty=peaceful
max-players=12
online-mode=true
enable-rcon=false
rcon.password=
white-list=true
server-port=25566
""",
    ),
    _neg(
        "gameservers/minecraft/survival/ops.json",
        "t19_uuid",
        r"""
[
  {
    "uuid": "{V}",
    "name": "halvard_h",
    "level": 4,
    "bypassesPlayerLimit": false
  },
  {
    "uuid": "{V2}",
    "name": "kestrelKid",
    "level": 2,
    "bypassesPlayerLimit": false
  }
]
""",
    ),
    _pos(
        "gameservers/minecraft/survival/plugins/DiscordSRV/config.yml",
        "t19_discord_bot",
        r"""
# DiscordSRV config
#
# Bot token: https://docs.discordsrv.com/installation/initial-setup
BotToken: "{V}"

Channels: {"global": "1127712238410723409", "staff": "1127712311903318117"}

DiscordConsoleChannelId: "1127712377561120788"
DiscordConsoleChannelLogRefreshRateInSeconds: 5
DiscordChatChannelMinecraftToDiscord: true
DiscordChatChannelDiscordToMinecraft: true
DiscordChatChannelRequireLinkedAccount: false
DiscordGameStatus: ["play.halvardmakers.net"]
Experiment_WebhookChatMessageDelivery: false
""",
    ),
    _neg(
        "gameservers/minecraft/survival/plugins/DiscordSRV/config.example.yml",
        "t19_token_placeholder",
        r"""
# DiscordSRV config (template kept in git; the live one is on the server only)
BotToken: "{V}"

Channels: {"global": "000000000000000000"}

DiscordConsoleChannelId: "000000000000000000"
DiscordChatChannelMinecraftToDiscord: true
DiscordChatChannelDiscordToMinecraft: true
DiscordGameStatus: ["play.example.net"]
""",
    ),
    _neg(
        "gameservers/minecraft/survival/plugins/DiscordSRV/linkedaccounts.json",
        "t19_snowflake",
        r"""
{
  "{V}": "5f3c2b1a-8e7d-4c6b-9a0f-1e2d3c4b5a69",
  "{V2}": "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
  "{V3}": "d1c2b3a4-f5e6-4d7c-8b9a-0f1e2d3c4b5a"
}
""",
    ),
    _neg(
        "gameservers/minecraft/helm/values.yaml",
        "t19_tmpl_ref",
        r"""
# itzg/minecraft chart values for the k3s box
minecraftServer:
  eula: "TRUE"
  type: PAPER
  version: "1.20.4"
  difficulty: normal
  memory: 6144M
  rcon:
    enabled: true
    port: 25575
    existingSecret: mc-rcon
    secretKey: rcon-password
    password: "{V}"
persistence:
  dataDir:
    enabled: true
    Size: 20Gi
""",
    ),
    _neg(
        "gameservers/minecraft/plugins/HalvardRewards/src/main/resources/lang/messages_de.yml",
        "t19_i18n",
        r"""
# German messages for HalvardRewards / AuthMe bridge
prefix: "&6[Belohnungen]&r "
reward-claimed: "&aDu hast deine tägliche Belohnung erhalten!"
already-claimed: "&cDu hast heute schon eine Belohnung bekommen."
login:
  prompt: "{V}"
  wrong: "&cFalsches Passwort."
  timeout: "&cZeit abgelaufen, bitte erneut verbinden."
register:
  prompt: "&eBitte registriere dich mit /register <Passwort> <Passwort>"
  password-too-short: "&cDas Passwort muss mindestens 8 Zeichen lang sein."
""",
    ),
    _pos(
        "gameservers/minecraft/plugins/HalvardRewards/src/main/java/net/halvard/rewards/StatusWebhook.java",
        "t19_discord_webhook",
        r"""
package net.halvard.rewards;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public final class StatusWebhook {
    // TODO move to config.yml before the plugin goes public on Hangar
    private static final String WEBHOOK_URL =
            "{V}";

    private final HttpClient http = HttpClient.newHttpClient();

    public void post(String content) {
        String body = "{\"username\":\"Survival\",\"content\":\"" + content.replace("\"", "'") + "\"}";
        HttpRequest request = HttpRequest.newBuilder(URI.create(WEBHOOK_URL))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
        http.sendAsync(request, HttpResponse.BodyHandlers.discarding());
    }
}
""",
    ),
    _pos(
        "gameservers/valheim/start_server.sh",
        "t19_pw",
        r"""
#!/bin/bash
export templdpath=$LD_LIBRARY_PATH
export LD_LIBRARY_PATH=./linux64:$LD_LIBRARY_PATH
export SteamAppId=892970

echo "Starting server PRESS CTRL-C to exit"

# Tip: Make a local copy of this script to avoid it being overwritten by steam.
# NOTE: Minimum password length is 5 characters & Password cant be in the server name.
./valheim_server.x86_64 -name "Halvard Vikings" -port 2456 -world "Bramblemark" \
  -password "{V}" -crossplay -public 0 -savedir /srv/valheim/saves

export LD_LIBRARY_PATH=$templdpath
""",
    ),
    _neg(
        "gameservers/valheim/adminlist.txt",
        "t19_steamid",
        r"""
// List admin players ID  ONE per line
{V}
{V2}
""",
    ),
    _pos(
        "gameservers/cs2/start.sh",
        "t19_steam_key",
        r"""
#!/bin/sh
# Game Server Login Token from https://steamcommunity.com/dev/managegameservers (app 730)
GSLT="{V}"

cd /srv/cs2
./game/bin/linuxsteamrt64/cs2 -dedicated -usercon \
  +game_type 0 +game_mode 1 +map de_inferno \
  +sv_setsteamaccount "$GSLT" \
  -maxplayers 12 -port 27015
""",
    ),
    _neg(
        "gameservers/cs2/addons/counterstrikesharp/configs/admins.json",
        "t19_steamid",
        r"""
{
  "halvard": {
    "identity": "{V}",
    "flags": ["@css/root"]
  },
  "kestrel": {
    "identity": "{V2}",
    "flags": ["@css/kick", "@css/ban", "@css/chat"]
  }
}
""",
    ),
    _pos(
        "gameservers/ark/ShooterGame/Saved/Config/LinuxServer/GameUserSettings.ini",
        "t19_pw",
        r"""
[ServerSettings]
ServerAdminPassword={V}
ServerPassword={V2}
RCONEnabled=True
RCONPort=27020
DifficultyOffset=1.000000
XPMultiplier=2.000000
TamingSpeedMultiplier=3.000000
HarvestAmountMultiplier=2.000000
AllowThirdPersonPlayer=True
ShowMapPlayerLocation=True

[SessionSettings]
SessionName=Halvard Makers ARK
Port=7777
QueryPort=27015

[/Script/Engine.GameSession]
MaxPlayers=16
""",
    ),
    _neg(
        "gameservers/ark/README.md",
        "t19_ark_ref",
        r"""
# ARK server (Ansible role `ark_server`)

The role renders `GameUserSettings.ini` from `templates/GameUserSettings.ini.j2`:

```ini
[ServerSettings]
ServerAdminPassword={V}
ServerPassword={{ ark_server_password }}
RCONEnabled=True
```

Passwords come from the `vault_ark_*` variables in `group_vars/gameservers/vault.yml`
(Ansible Vault). Ask in #gameservers for the vault password.
""",
    ),
    _pos(
        "gameservers/gmod/garrysmod/cfg/server.cfg",
        "t19_weak_pw",
        r"""
hostname "Halvard Makers TTT"
rcon_password "{V}"
sv_password ""
sv_region 3
sv_lan 0
sbox_maxprops 150
ttt_traitor_pct 0.25
ttt_detective_pct 0.13
sv_allowupload 0
sv_allowdownload 0
sv_downloadurl "https://fastdl.halvardmakers.net/gmod/"
""",
    ),
    _pos(
        "gameservers/gmod/garrysmod/lua/autorun/server/sv_discord_relay.lua",
        "t19_discord_webhook",
        r"""
-- Relays round results to the #ttt channel
local WEBHOOK = "{V}"

hook.Add("TTTEndRound", "HalvardDiscordRelay", function(result)
    local winner = result == WIN_TRAITOR and "Traitors" or "Innocents"
    HTTP({
        url = WEBHOOK,
        method = "POST",
        type = "application/json",
        body = util.TableToJSON({
            username = "TTT",
            content = string.format("Round over on %s: **%s** win", game.GetMap(), winner),
        }),
        failed = function(err) print("[relay] " .. err) end,
    })
end)
""",
    ),
    _pos(
        "tools/steam-stats/fetch_playtime.py",
        "t19_steam_key",
        r"""
'''Weekly "who played what" post for the Discord; reads the Steam Web API.'''
import json
import urllib.request

STEAM_API_KEY = "{V}"
MEMBERS = {
    "halvard": "76561198012345678",
    "kestrel": "76561198087654321",
}


def recently_played(steamid: str) -> list[dict]:
    url = (
        "https://api.steampowered.com/IPlayerService/GetRecentlyPlayedGames/v1/"
        f"?key={STEAM_API_KEY}&steamid={steamid}&format=json"
    )
    with urllib.request.urlopen(url, timeout=20) as resp:
        return json.load(resp)["response"].get("games", [])


for name, sid in MEMBERS.items():
    for game in recently_played(sid):
        print(name, game["name"], game["playtime_2weeks"] // 60, "h")
""",
    ),
    _pos(
        "bots/halvard-discord-bot/bot.py",
        "t19_discord_bot",
        r"""
import logging

import discord
from discord.ext import commands

logging.basicConfig(level=logging.INFO)

intents = discord.Intents.default()
intents.message_content = True
bot = commands.Bot(command_prefix="!", intents=intents)


@bot.command()
async def status(ctx: commands.Context) -> None:
    '''Show which game servers are up.'''
    await ctx.send("Survival: up | Valheim: up | CS2: down")


@bot.event
async def on_ready() -> None:
    logging.info("Logged in as %s", bot.user)


bot.run("{V}")
""",
    ),
    _neg(
        "bots/halvard-discord-bot/main.py",
        "t19_py_ref",
        r"""
import os

import discord
from discord.ext import commands
from dotenv import load_dotenv

load_dotenv()

intents = discord.Intents.default()
intents.members = True
bot = commands.Bot(command_prefix="!", intents=intents)


@bot.event
async def on_member_join(member: discord.Member) -> None:
    channel = member.guild.system_channel
    if channel:
        await channel.send(f"Welcome {member.mention}! Read #rules first.")


if __name__ == "__main__":
    bot.run({V})
""",
    ),
    _neg(
        "bots/halvard-discord-bot/.env.example",
        "t19_token_placeholder",
        r"""
# Copy to .env and fill in. Create the bot at https://discord.com/developers/applications
DISCORD_TOKEN={V}
GUILD_ID=
LOG_LEVEL=INFO
""",
    ),
    _neg(
        "bots/halvard-discord-bot/config.json",
        "t19_snowflake",
        r"""
{
  "prefix": "!",
  "guildId": "{V}",
  "channels": {
    "welcome": "{V2}",
    "serverStatus": "{V3}",
    "modLog": "{V4}"
  },
  "roles": {
    "member": "1127714420883615764",
    "moderator": "1127714517658837052"
  }
}
""",
    ),
    _neg(
        "bots/music-bot/index.js",
        "t19_js_ref",
        r"""
const { Client, GatewayIntentBits } = require('discord.js');
require('dotenv').config();

const client = new Client({
  intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildVoiceStates],
});

client.once('ready', () => {
  console.log(`Ready as ${client.user.tag}`);
});

client.on('interactionCreate', async (interaction) => {
  if (!interaction.isChatInputCommand()) return;
  if (interaction.commandName === 'ping') {
    await interaction.reply('pong');
  }
});

client.login({V});
""",
    ),
    _pos(
        "bots/telegram-doorbell/bot.py",
        "t19_telegram",
        r"""
#!/usr/bin/env python3
'''Sends a photo to the family group when the doorbell rings (called by the ESP32 over HTTP).'''
from flask import Flask, request
import requests

BOT_TOKEN = "{V}"
CHAT_ID = -1001873446120
app = Flask(__name__)


@app.post("/ring")
def ring():
    photo = request.files["photo"]
    requests.post(
        f"https://api.telegram.org/bot{BOT_TOKEN}/sendPhoto",
        data={"chat_id": CHAT_ID, "caption": "Noen ringer på døra"},
        files={"photo": photo.stream},
        timeout=15,
    )
    return "ok"
""",
    ),
    _neg(
        "bots/telegram-doorbell/settings.py",
        "t19_chat_id",
        r"""
# Non-secret settings. The bot token is read from /etc/doorbell/token by systemd (LoadCredential).
FAMILY_CHAT_ID = {V}
WORKSHOP_CHAT_ID = {V2}
PHOTO_MAX_WIDTH = 1280
QUIET_HOURS = (23, 7)
LANGUAGE = "nb"
""",
    ),
    _pos(
        "bots/twitch-chatbot/config.js",
        "t19_twitch_oauth",
        r"""
// tmi.js settings for the !commands bot on the halvardmakers channel
module.exports = {
  options: { debug: false },
  identity: {
    username: 'halvard_bot',
    password: '{V}',
  },
  channels: ['halvardmakers'],
  commands: {
    discord: 'Join us: discord.gg/halvard',
    server: 'play.halvardmakers.net (1.20.4, whitelist)',
  },
};
""",
    ),
    _neg(
        "unity/HalvardKart/Assets/Scripts/Net/LobbyClient.cs.meta",
        "t19_unity_guid",
        r"""
fileFormatVersion: 2
guid: {V}
MonoImporter:
  externalObjects: {}
  serializedVersion: 2
  defaultReferences: []
  executionOrder: 0
  icon: {instanceID: 0}
  userData:
  assetBundleName:
  assetBundleVariant:
""",
    ),
    _neg(
        "unity/HalvardKart/ProjectSettings/ProjectSettings.asset",
        "t19_uuid",
        r"""
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!129 &1
PlayerSettings:
  m_ObjectHideFlags: 0
  serializedVersion: 26
  productGUID: 5c1d9e2fa03b4e7d8a6f1b2c3d4e5f60
  AndroidProfiler: 0
  companyName: Halvard Makers
  productName: Halvard Kart
  defaultScreenWidth: 1920
  defaultScreenHeight: 1080
  cloudProjectId: {V}
  projectName: HalvardKart
  organizationId: halvard-makers
  cloudEnabled: 0
  AndroidKeystoreName: '{inproject}: Keystore/halvardkart.keystore'
  AndroidKeyaliasName: halvardkart
""",
    ),
    _pos(
        "unity/HalvardKart/Assets/Scripts/Net/LeaderboardService.cs",
        "t19_hex32",
        r"""
using System.Collections;
using System.Text;
using UnityEngine;
using UnityEngine.Networking;

namespace Halvard.Kart.Net
{
    public class LeaderboardService : MonoBehaviour
    {
        // Server-side secret for the leaderboard API; the build signs each submitted lap with it.
        private const string ApiBase = "https://kart-api.halvardmakers.net/v1";
        private const string ApiSecret = "{V}";

        public IEnumerator SubmitLap(string player, float seconds)
        {
            var json = JsonUtility.ToJson(new LapDto { player = player, seconds = seconds });
            using var req = new UnityWebRequest(ApiBase + "/laps", "POST");
            req.uploadHandler = new UploadHandlerRaw(Encoding.UTF8.GetBytes(json));
            req.downloadHandler = new DownloadHandlerBuffer();
            req.SetRequestHeader("Content-Type", "application/json");
            req.SetRequestHeader("X-Api-Secret", ApiSecret);
            yield return req.SendWebRequest();
        }
    }
}
""",
    ),
    _pos(
        "unity/HalvardKart/ProjectSettings/keystore.properties",
        "t19_pw",
        r"""
# Used by the Android build in Unity Cloud Build -> moved to local builds in 2023
storeFile=Keystore/halvardkart.keystore
storePassword={V}
keyAlias=halvardkart
keyPassword={V2}
""",
    ),
    _pos(
        "godot/bramble-quest/export_presets.cfg",
        "t19_godot_key",
        r"""
[preset.0]

name="Windows Desktop"
platform="Windows Desktop"
runnable=true
dedicated_server=false
custom_features=""
export_filter="all_resources"
include_filter=""
exclude_filter=""
export_path="../builds/windows/BrambleQuest.exe"
encryption_include_filters="*.gd,*.tscn"
encryption_exclude_filters=""
encrypt_pck=true
encrypt_directory=true
script_encryption_key="{V}"

[preset.0.options]

custom_template/debug=""
custom_template/release="res://templates/windows_release_x86_64_enc.exe"
binary_format/embed_pck=true
""",
    ),
    _neg(
        "godot/bramble-quest/project.godot",
        "t19_git_sha",
        r"""
; Engine configuration file.
config_version=5

[application]

config/name="Bramble Quest"
config/version="0.9.3"
config/build_commit="{V}"
run/main_scene="uid://c4k2m8n1p0qrs"
config/features=PackedStringArray("4.2", "Forward Plus")
config/icon="res://icon.svg"

[autoload]

SaveGame="*res://autoload/save_game.gd"
Analytics="*res://autoload/analytics.gd"

[display]

window/size/viewport_width=1280
window/size/viewport_height=720
""",
    ),
    _neg(
        "godot/bramble-quest/autoload/save_game.gd",
        "t19_sha256_hex",
        r"""
extends Node

const SAVE_PATH := "user://save.dat"
# SHA-256 of the shipped default save; used to detect whether the player has started a game.
const DEFAULT_SAVE_SHA256 := "{V}"

func has_progress() -> bool:
	if not FileAccess.file_exists(SAVE_PATH):
		return false
	var f := FileAccess.open(SAVE_PATH, FileAccess.READ)
	var sha := f.get_as_text().sha256_text()
	return sha != DEFAULT_SAVE_SHA256
""",
    ),
    _neg(
        "docs/community/discord-export-2024-02.json",
        "t19_fake_test",
        r"""
{
  "guild": {"id": "1127711984523530290", "name": "Halvard Makers"},
  "channel": {"id": "1127713005327446107", "name": "bot-dev"},
  "messages": [
    {
      "id": "1204411822345031760",
      "timestamp": "2024-02-05T19:11:02.431+00:00",
      "author": {"name": "kestrelKid"},
      "content": "the unit tests use BOT_TOKEN={V} so they never touch discord, the real one is only on the pi"
    },
    {
      "id": "1204412090314678322",
      "timestamp": "2024-02-05T19:12:06.118+00:00",
      "author": {"name": "halvard_h"},
      "content": "👍 and the mock gateway in tests/conftest.py rejects anything else"
    }
  ]
}
""",
    ),
    _pos(
        "docs/community/discord-export-2023-11.json",
        "t19_rcon_pw",
        r"""
{
  "guild": {"id": "1127711984523530290", "name": "Halvard Makers"},
  "channel": {"id": "1127712311903318117", "name": "staff"},
  "messages": [
    {
      "id": "1176233940011286559",
      "timestamp": "2023-11-20T21:40:55.007+00:00",
      "author": {"name": "halvard_h"},
      "content": "new rcon pw for survival after the leak: {V}"
    },
    {
      "id": "1176234181334122506",
      "timestamp": "2023-11-20T21:41:52.660+00:00",
      "author": {"name": "kestrelKid"},
      "content": "thx, updated the backup script"
    }
  ]
}
""",
    ),
]

# ---------------------------------------------------------------------- desktop software
_DESKTOP: list[evalset.Template] = [
    _pos(
        "desktop/halvard-launcher/electron-builder.yml",
        "t19_github",
        r"""
appId: net.halvardmakers.launcher
productName: Halvard Launcher
directories:
  output: dist
files:
  - "build/**/*"
  - "package.json"
win:
  target: nsis
  publisherName: Halvard Makers
mac:
  category: public.app-category.games
publish:
  provider: github
  owner: halvard-makers
  repo: launcher
  private: true
  token: {V}
""",
    ),
    _neg(
        "desktop/halvard-launcher/.github/workflows/release.yml",
        "t19_gha_token_ref",
        r"""
name: release
on:
  push:
    tags: ["v*"]
jobs:
  build:
    runs-on: ${{ matrix.os }}
    strategy:
      matrix:
        os: [windows-latest, macos-latest]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
      - run: npm ci
      - run: npx electron-builder --publish always
        env:
          GH_TOKEN: {V}
          CSC_LINK: ${{ secrets.WIN_CERT_P12_BASE64 }}
          CSC_KEY_PASSWORD: ${{ secrets.WIN_CERT_PASSWORD }}
""",
    ),
    _pos(
        "desktop/halvard-launcher/src/main/updater.js",
        "t19_github_fine",
        r"""
const { autoUpdater } = require('electron-updater');
const log = require('electron-log');

// The releases repo is private, so the app needs a read-only token to see them.
autoUpdater.setFeedURL({
  provider: 'github',
  owner: 'halvard-makers',
  repo: 'launcher',
  private: true,
  token: '{V}',
});

autoUpdater.logger = log;
autoUpdater.logger.transports.file.level = 'info';

function checkForUpdates(win) {
  autoUpdater.on('update-downloaded', () => win.webContents.send('update-ready'));
  return autoUpdater.checkForUpdatesAndNotify();
}

module.exports = { checkForUpdates };
""",
    ),
    _neg(
        "desktop/halvard-launcher/package-lock.json",
        "t19_sri",
        r"""
{
  "name": "halvard-launcher",
  "version": "2.3.1",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/electron-updater": {
      "version": "6.1.8",
      "resolved": "https://registry.npmjs.org/electron-updater/-/electron-updater-6.1.8.tgz",
      "integrity": "{V}"
    },
    "node_modules/electron-log": {
      "version": "5.1.2",
      "resolved": "https://registry.npmjs.org/electron-log/-/electron-log-5.1.2.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
    ),
    _pos(
        "desktop/halvard-launcher/src/main/mapbox.ts",
        "t19_mapbox_sk",
        r"""
// Server-list map: uploads the server locations as a tileset at build time.
import fetch from 'node-fetch';

const MAPBOX_USER = 'halvardmakers';
const MAPBOX_SECRET_TOKEN = '{V}';

export async function uploadServers(geojson: object): Promise<void> {
  const url = `https://api.mapbox.com/tilesets/v1/sources/${MAPBOX_USER}/servers?access_token=${MAPBOX_SECRET_TOKEN}`;
  const res = await fetch(url, {
    method: 'PUT',
    body: JSON.stringify(geojson),
    headers: { 'Content-Type': 'application/json' },
  });
  if (!res.ok) throw new Error(`mapbox ${res.status}`);
}
""",
    ),
    _neg(
        "desktop/halvard-launcher/src/renderer/map.ts",
        "t19_mapbox_pk",
        r"""
import mapboxgl from 'mapbox-gl';

// Public token, URL-restricted to app:// in the Mapbox account. Safe to ship.
mapboxgl.accessToken = '{V}';

export function mountMap(el: HTMLElement): mapboxgl.Map {
  return new mapboxgl.Map({
    container: el,
    style: 'mapbox://styles/mapbox/dark-v11',
    center: [10.75, 59.91],
    zoom: 4,
  });
}
""",
    ),
    _pos(
        "desktop/qt-inventory/src/database.cpp",
        "t19_pw",
        r"""
#include "database.h"

#include <QSqlDatabase>
#include <QSqlError>
#include <QDebug>

bool Database::open()
{
    QSqlDatabase db = QSqlDatabase::addDatabase("QMYSQL", "inventory");
    db.setHostName("10.0.50.4");
    db.setPort(3306);
    db.setDatabaseName("workshop_inventory");
    db.setUserName("inventory_app");
    db.setPassword("{V}");
    if (!db.open()) {
        qWarning() << "DB open failed:" << db.lastError().text();
        return false;
    }
    return true;
}
""",
    ),
    _neg(
        "desktop/qt-inventory/src/settingsdialog.ui",
        "t19_i18n",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0">
 <class>SettingsDialog</class>
 <widget class="QDialog" name="SettingsDialog">
  <layout class="QFormLayout" name="formLayout">
   <item row="0" column="0">
    <widget class="QLabel" name="labelPassword">
     <property name="text">
      <string>{V}</string>
     </property>
    </widget>
   </item>
   <item row="0" column="1">
    <widget class="QLineEdit" name="editPassword">
     <property name="echoMode">
      <enum>QLineEdit::Password</enum>
     </property>
    </widget>
   </item>
  </layout>
 </widget>
</ui>
""",
    ),
    _neg(
        "desktop/qt-inventory/src/main.cpp",
        "t19_qt_ref",
        r"""
#include <QApplication>
#include <QSettings>
#include "mainwindow.h"
#include "database.h"

int main(int argc, char *argv[])
{
    QApplication app(argc, argv);
    QCoreApplication::setOrganizationName("Halvard Makers");
    QCoreApplication::setApplicationName("Workshop Inventory");

    QSettings settings;
    Database::Config cfg;
    cfg.host = settings.value("db/host", "localhost").toString();
    cfg.user = settings.value("db/user", "inventory_app").toString();
    cfg.password = QString::fromUtf8(qgetenv("INVENTORY_DB_PASS"));
    // fallback for the kiosk build, see kiosk.pri
    if (cfg.password.isEmpty()) cfg.password = {V};

    MainWindow w(cfg);
    w.show();
    return app.exec();
}
""",
    ),
    _pos(
        "desktop/TransitKiosk/TransitKiosk/App.config",
        "t19_pw",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <startup>
    <supportedRuntime version="v4.0" sku=".NETFramework,Version=v4.8" />
  </startup>
  <connectionStrings>
    <add name="KioskDb"
         connectionString="Data Source=SQL01\KIOSK;Initial Catalog=TransitKiosk;User ID=kiosk_app;Password={V};"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="StationCode" value="OSL-S" />
    <add key="TopUpGateway" value="https://topup.halvard-transit.no/api" />
    <add key="TopUpApiKey" value="{V2}" />
  </appSettings>
</configuration>
""",
    ),
    _neg(
        "desktop/TransitKiosk/TransitKiosk.Tests/CardReaderTests.cs",
        "t19_fare_card",
        r"""
using NUnit.Framework;
using TransitKiosk.Cards;

namespace TransitKiosk.Tests
{
    [TestFixture]
    public class CardReaderTests
    {
        // Printed numbers of the test cards in the blue envelope (no balance, blocked for travel).
        [TestCase("{V}")]
        [TestCase("{V2}")]
        public void ParsesPrintedCardNumber(string printed)
        {
            var card = FareCard.Parse(printed);
            Assert.That(card.Issuer, Is.EqualTo("HT"));
            Assert.That(card.Number.Replace(" ", "").Length, Is.EqualTo(16));
        }
    }
}
""",
    ),
    _neg(
        "desktop/TransitKiosk/TransitKiosk/Properties/AssemblyInfo.cs",
        "t19_uuid",
        r"""
using System.Reflection;
using System.Runtime.InteropServices;

[assembly: AssemblyTitle("TransitKiosk")]
[assembly: AssemblyDescription("Ticket and top-up kiosk")]
[assembly: AssemblyCompany("Halvard Transit AS")]
[assembly: AssemblyProduct("TransitKiosk")]
[assembly: AssemblyCopyright("Copyright © 2016-2024")]
[assembly: ComVisible(false)]

// The following GUID is for the ID of the typelib if this project is exposed to COM
[assembly: Guid("{V}")]

[assembly: AssemblyVersion("4.2.0.0")]
[assembly: AssemblyFileVersion("4.2.0.117")]
""",
    ),
    _pos(
        "desktop/TransitKiosk/TransitKiosk/Services/ReceiptMailer.cs",
        "t19_sendgrid",
        r"""
using System.Threading.Tasks;
using SendGrid;
using SendGrid.Helpers.Mail;

namespace TransitKiosk.Services
{
    internal sealed class ReceiptMailer
    {
        private const string ApiKey = "{V}";
        private readonly SendGridClient _client = new SendGridClient(ApiKey);

        public Task SendAsync(string to, string receiptHtml)
        {
            var msg = MailHelper.CreateSingleEmail(
                new EmailAddress("kvittering@halvard-transit.no", "Halvard Transit"),
                new EmailAddress(to),
                "Kvittering",
                null,
                receiptHtml);
            return _client.SendEmailAsync(msg);
        }
    }
}
""",
    ),
    _neg(
        "desktop/TransitKiosk/Installer/Product.wxs",
        "t19_guid_upper",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="Transit Kiosk" Language="1044" Version="4.2.0.117"
           Manufacturer="Halvard Transit AS" UpgradeCode="{V}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine" />
    <MajorUpgrade DowngradeErrorMessage="A newer version is already installed." />
    <MediaTemplate EmbedCab="yes" />
    <Feature Id="Main" Title="Transit Kiosk" Level="1">
      <ComponentGroupRef Id="ProductComponents" />
    </Feature>
  </Product>
  <Fragment>
    <ComponentGroup Id="ProductComponents" Directory="INSTALLFOLDER">
      <Component Id="KioskExe" Guid="{V2}">
        <File Source="$(var.TransitKiosk.TargetPath)" KeyPath="yes" />
      </Component>
    </ComponentGroup>
  </Fragment>
</Wix>
""",
    ),
    _neg(
        "desktop/WorkshopBooking/WorkshopBooking/Resources/Strings.de.resx",
        "t19_i18n",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<root>
  <resheader name="resmimetype">
    <value>text/microsoft-resx</value>
  </resheader>
  <data name="LoginTitle" xml:space="preserve">
    <value>Anmeldung</value>
  </data>
  <data name="PasswordLabel" xml:space="preserve">
    <value>{V}</value>
  </data>
  <data name="PasswordWrong" xml:space="preserve">
    <value>Das Passwort ist falsch.</value>
  </data>
</root>
""",
    ),
    _pos(
        "desktop/legacy-vb6/Lager/modDatabase.bas",
        "t19_weak_pw",
        r"""
Attribute VB_Name = "modDatabase"
Option Explicit

Public cn As ADODB.Connection

Public Sub OpenDatabase()
    Set cn = New ADODB.Connection
    cn.ConnectionString = "Provider=SQLOLEDB.1;Data Source=LAGER01;" & _
                          "Initial Catalog=Lager;User ID=sa;Password={V};"
    cn.CursorLocation = adUseClient
    cn.Open
End Sub

Public Sub CloseDatabase()
    If Not cn Is Nothing Then
        If cn.State = adStateOpen Then cn.Close
        Set cn = Nothing
    End If
End Sub
""",
    ),
    _neg(
        "desktop/legacy-vb6/Lager/modSettings.bas",
        "t19_vb_ref",
        r"""
Attribute VB_Name = "modSettings"
Option Explicit

Public Function DbPassword() As String
    ' The password is stored per machine by the installer, never in the code.
    DbPassword = {V}
End Function

Public Function ConnString() As String
    ConnString = "Provider=SQLOLEDB.1;Data Source=LAGER01;Initial Catalog=Lager;" & _
                 "User ID=lager_app;Password=" & DbPassword() & ";"
End Function
""",
    ),
    _pos(
        "desktop/VBNetTools/Medlemsimport/Module1.vb",
        "t19_pw",
        r"""
Imports System.Data.OleDb

Module Module1
    Private Const ConnStr As String =
        "Provider=Microsoft.ACE.OLEDB.12.0;Data Source=\\fil01\data\Medlemmer_be.accdb;" &
        "Jet OLEDB:Database Password={V};"

    Sub Main(args As String())
        Using cn As New OleDbConnection(ConnStr)
            cn.Open()
            Using cmd As New OleDbCommand("SELECT COUNT(*) FROM Medlem", cn)
                Console.WriteLine("Medlemmer: " & cmd.ExecuteScalar().ToString())
            End Using
        End Using
    End Sub
End Module
""",
    ),
    _neg(
        "desktop/VBNetTools/Medlemsimport/My Project/Settings.settings",
        "t19_placeholder",
        r"""
<?xml version='1.0' encoding='utf-8'?>
<SettingsFile xmlns="http://schemas.microsoft.com/VisualStudio/2004/01/settings" CurrentProfile="(Default)" GeneratedClassNamespace="My" GeneratedClassName="MySettings" UseMySettingsClassName="true">
  <Profiles />
  <Settings>
    <Setting Name="BackendPath" Type="System.String" Scope="User">
      <Value Profile="(Default)">\\fil01\data\Medlemmer_be.accdb</Value>
    </Setting>
    <Setting Name="DbPassword" Type="System.String" Scope="User">
      <Value Profile="(Default)">{V}</Value>
    </Setting>
  </Settings>
</SettingsFile>
""",
    ),
    _pos(
        "desktop/delphi/Kasse/dmMain.dfm",
        "t19_pw",
        r"""
object dmMain: TdmMain
  OldCreateOrder = False
  Height = 240
  Width = 320
  object ADOConnection1: TADOConnection
    ConnectionString =
      'Provider=SQLOLEDB.1;Password={V};Persist Security Info=True;User ' +
      'ID=kasse;Initial Catalog=Kasse;Data Source=KASSE-SRV\SQLEXPRESS'
    LoginPrompt = False
    Provider = 'SQLOLEDB.1'
    Left = 40
    Top = 24
  end
  object qryVarer: TADOQuery
    Connection = ADOConnection1
    SQL.Strings = (
      'select * from Varer where Aktiv = 1')
    Left = 136
    Top = 24
  end
end
""",
    ),
    _pos(
        "desktop/lazarus/Verksted/udatamodule.pas",
        "t19_url_pw",
        r"""
unit uDataModule;

{$mode objfpc}{$H+}

interface

uses
  Classes, SysUtils, IBConnection, sqldb;

type
  TdmVerksted = class(TDataModule)
    procedure DataModuleCreate(Sender: TObject);
  private
    FConn: TIBConnection;
    FTrans: TSQLTransaction;
  end;

implementation

procedure TdmVerksted.DataModuleCreate(Sender: TObject);
begin
  FConn := TIBConnection.Create(Self);
  FConn.HostName := 'fb01';
  FConn.DatabaseName := '/srv/firebird/verksted.fdb';
  FConn.UserName := 'SYSDBA';
  FConn.Password := '{V}';
  FTrans := TSQLTransaction.Create(Self);
  FConn.Transaction := FTrans;
  FConn.Open;
end;

end.
""",
    ),
    _neg(
        "desktop/delphi/Kasse/uLogin.pas",
        "t19_delphi_ref",
        r"""
unit uLogin;

interface

uses
  Winapi.Windows, System.SysUtils, Vcl.Forms, Vcl.StdCtrls, dmMain;

type
  TfrmLogin = class(TForm)
    edtUser: TEdit;
    edtPassword: TEdit;
    btnOK: TButton;
    procedure btnOKClick(Sender: TObject);
  end;

implementation

{$R *.dfm}

procedure TfrmLogin.btnOKClick(Sender: TObject);
begin
  dmMain.dmMain.Connect(edtUser.Text, {V});
  ModalResult := mrOk;
end;

end.
""",
    ),
    _pos(
        "desktop/swing-ordertool/src/main/java/no/halvard/order/Db.java",
        "t19_pw",
        r"""
package no.halvard.order;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;

final class Db {
    private static final String URL = "jdbc:postgresql://pg01.halvard.local:5432/orders";
    private static final String USER = "ordertool";
    private static final String PASSWORD = "{V}";

    private Db() {}

    static Connection open() throws SQLException {
        return DriverManager.getConnection(URL, USER, PASSWORD);
    }
}
""",
    ),
    _neg(
        "desktop/swing-ordertool/src/main/java/no/halvard/order/LoginDialog.java",
        "t19_java_ref",
        r"""
package no.halvard.order;

import javax.swing.*;
import java.awt.*;

final class LoginDialog extends JDialog {
    private final JTextField user = new JTextField(16);
    private final JPasswordField password = new JPasswordField(16);

    LoginDialog(Frame owner) {
        super(owner, "Logg inn", true);
        setLayout(new GridLayout(3, 2, 4, 4));
        add(new JLabel("Bruker")); add(user);
        add(new JLabel("Passord")); add(password);
        JButton ok = new JButton("OK");
        ok.addActionListener(e -> {
            char[] pw = {V};
            Session.login(user.getText(), pw);
            java.util.Arrays.fill(pw, '\0');
            dispose();
        });
        add(ok);
        pack();
    }
}
""",
    ),
    _pos(
        "desktop/autohotkey/lager-autologin.ahk",
        "t19_weak_pw",
        r"""
; Logs the warehouse PC into the stock system at 07:00 (Task Scheduler)
#Requires AutoHotkey v2.0
SetTitleMatchMode 2

Run "C:\Program Files (x86)\Lager\Lager.exe"
WinWaitActive "Lager - innlogging", , 30
Send "lager{Tab}"
Send "{V}{Enter}"
WinWaitActive "Lager - Hovedmeny", , 30
Send "!v"  ; Varer
""",
    ),
    _neg(
        "desktop/autohotkey/kiosk-login.ahk",
        "t19_ahk_ref",
        r"""
; Kiosk login helper: the password is kept in Windows Credential Manager (cmdkey).
#Requires AutoHotkey v2.0
#Include <CredRead>

cred := CredRead("HalvardKiosk")
Run "C:\Program Files\TransitKiosk\TransitKiosk.exe"
WinWaitActive "Transit Kiosk", , 30
Send cred.username "{Tab}"
Send {V} "{Enter}"
""",
    ),
]

# ---------------------------------------------------------------------- legacy enterprise
_ENTERPRISE: list[evalset.Template] = [
    _pos(
        "legacy/ordreweb/WebContent/WEB-INF/applicationContext.xml",
        "t19_oracle_pw",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
           http://www.springframework.org/schema/beans/spring-beans-3.0.xsd">

    <bean id="dataSource" class="org.apache.commons.dbcp.BasicDataSource" destroy-method="close">
        <property name="driverClassName" value="oracle.jdbc.OracleDriver"/>
        <property name="url" value="jdbc:oracle:thin:@ora-prod01.halvard.local:1521:ORDPRD"/>
        <property name="username" value="ORDREWEB"/>
        <property name="password" value="{V}"/>
        <property name="maxActive" value="30"/>
        <property name="validationQuery" value="select 1 from dual"/>
    </bean>

    <bean id="sqlMapClient" class="org.springframework.orm.ibatis.SqlMapClientFactoryBean">
        <property name="configLocation" value="/WEB-INF/sqlmap-config.xml"/>
        <property name="dataSource" ref="dataSource"/>
    </bean>
</beans>
""",
    ),
    _neg(
        "legacy/ordreweb/WebContent/WEB-INF/applicationContext-datasource.xml",
        "t19_spring_ref",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:context="http://www.springframework.org/schema/context"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
           http://www.springframework.org/schema/beans/spring-beans-3.0.xsd
           http://www.springframework.org/schema/context
           http://www.springframework.org/schema/context/spring-context-3.0.xsd">

    <context:property-placeholder location="file:${catalina.base}/conf/ordreweb.properties"/>

    <bean id="dataSource" class="org.apache.commons.dbcp.BasicDataSource" destroy-method="close">
        <property name="driverClassName" value="oracle.jdbc.OracleDriver"/>
        <property name="url" value="${jdbc.url}"/>
        <property name="username" value="${jdbc.username}"/>
        <property name="password" value="{V}"/>
    </bean>
</beans>
""",
    ),
    _neg(
        "legacy/ordreweb/WebContent/WEB-INF/jee-datasource.xml",
        "t19_jasypt",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans
           http://www.springframework.org/schema/beans/spring-beans-3.0.xsd">

    <!-- Jasypt decrypts ENC(...) with the master password from APP_ENCRYPTION_PASSWORD -->
    <bean id="propertyConfigurer"
          class="org.jasypt.spring31.properties.EncryptablePropertyPlaceholderConfigurer">
        <constructor-arg ref="configurationEncryptor"/>
        <property name="properties">
            <props>
                <prop key="jdbc.password">{V}</prop>
                <prop key="smtp.password">{V2}</prop>
            </props>
        </property>
    </bean>
</beans>
""",
    ),
    _neg(
        "legacy/ordreweb/src/ordreweb.properties",
        "t19_jasypt",
        r"""
# ordreweb runtime properties (copied to $CATALINA_BASE/conf on deploy)
# Secrets are Jasypt-encrypted; the master password is in JASYPT_ENCRYPTOR_PASSWORD on the host.
jdbc.url=jdbc:oracle:thin:@ora-prod01.halvard.local:1521:ORDPRD
jdbc.username=ORDREWEB
jdbc.password={V}
jdbc.maxActive=30

mail.smtp.host=smtp.halvard.local
mail.smtp.user=ordreweb
mail.smtp.password={V2}

report.dir=/data/ordreweb/reports
""",
    ),
    _pos(
        "legacy/ordreweb/src/sqlmap-config.xml",
        "t19_pw",
        r"""
<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE sqlMapConfig PUBLIC "-//ibatis.apache.org//DTD SQL Map Config 2.0//EN"
    "http://ibatis.apache.org/dtd/sql-map-config-2.dtd">
<sqlMapConfig>
  <settings cacheModelsEnabled="true" enhancementEnabled="true" lazyLoadingEnabled="true"/>
  <transactionManager type="JDBC">
    <dataSource type="SIMPLE">
      <property name="JDBC.Driver" value="com.ibm.db2.jcc.DB2Driver"/>
      <property name="JDBC.ConnectionURL" value="jdbc:db2://db2lager.halvard.local:50000/LAGER"/>
      <property name="JDBC.Username" value="lagerrd"/>
      <property name="JDBC.Password" value="{V}"/>
      <property name="Pool.MaximumActiveConnections" value="10"/>
    </dataSource>
  </transactionManager>
  <sqlMap resource="no/halvard/ordre/sql/Ordre.xml"/>
  <sqlMap resource="no/halvard/ordre/sql/Kunde.xml"/>
</sqlMapConfig>
""",
    ),
    _neg(
        "legacy/kundeportal/src/main/resources/mybatis-config.xml",
        "t19_spring_ref",
        r"""
<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE configuration PUBLIC "-//mybatis.org//DTD Config 3.0//EN"
    "http://mybatis.org/dtd/mybatis-3-config.dtd">
<configuration>
  <properties resource="db.properties"/>
  <environments default="prod">
    <environment id="prod">
      <transactionManager type="JDBC"/>
      <dataSource type="POOLED">
        <property name="driver" value="${jdbc.driver}"/>
        <property name="url" value="${jdbc.url}"/>
        <property name="username" value="${jdbc.username}"/>
        <property name="password" value="{V}"/>
      </dataSource>
    </environment>
  </environments>
  <mappers>
    <mapper resource="no/halvard/kunde/KundeMapper.xml"/>
  </mappers>
</configuration>
""",
    ),
    _pos(
        "legacy/kundeportal/src/main/resources/hibernate.cfg.xml",
        "t19_pw",
        r"""
<?xml version='1.0' encoding='utf-8'?>
<!DOCTYPE hibernate-configuration PUBLIC
        "-//Hibernate/Hibernate Configuration DTD 3.0//EN"
        "http://www.hibernate.org/dtd/hibernate-configuration-3.0.dtd">
<hibernate-configuration>
    <session-factory>
        <property name="hibernate.connection.driver_class">com.mysql.jdbc.Driver</property>
        <property name="hibernate.connection.url">jdbc:mysql://mysql02.halvard.local:3306/kundeportal</property>
        <property name="hibernate.connection.username">kundeportal</property>
        <property name="hibernate.connection.password">{V}</property>
        <property name="hibernate.dialect">org.hibernate.dialect.MySQL5InnoDBDialect</property>
        <property name="hibernate.c3p0.max_size">20</property>
        <property name="show_sql">false</property>
        <mapping class="no.halvard.kunde.Kunde"/>
        <mapping class="no.halvard.kunde.Ordre"/>
    </session-factory>
</hibernate-configuration>
""",
    ),
    _neg(
        "legacy/kundeportal/src/main/resources/no/halvard/kunde/KundeMapper.xml",
        "t19_form_field",
        r"""
<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE mapper PUBLIC "-//mybatis.org//DTD Mapper 3.0//EN"
    "http://mybatis.org/dtd/mybatis-3-mapper.dtd">
<mapper namespace="no.halvard.kunde.KundeMapper">
  <resultMap id="kundeMap" type="no.halvard.kunde.Kunde">
    <id property="id" column="KUNDE_ID"/>
    <result property="epost" column="EPOST"/>
    <result property="passordHash" column="{V}"/>
  </resultMap>
  <select id="findByEpost" resultMap="kundeMap">
    SELECT KUNDE_ID, EPOST, {V} FROM KUNDE WHERE EPOST = #{epost}
  </select>
  <update id="updatePassword">
    UPDATE KUNDE SET {V} = #{passordHash} WHERE KUNDE_ID = #{id}
  </update>
</mapper>
""",
    ),
    _pos(
        "legacy/ordreweb/build.xml",
        "t19_pw",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<project name="ordreweb" default="war" basedir=".">
    <property name="src.dir" value="src"/>
    <property name="build.dir" value="build"/>
    <property name="tomcat.manager.url" value="http://app03.halvard.local:8080/manager/text"/>
    <property name="tomcat.manager.username" value="deployer"/>
    <property name="tomcat.manager.password" value="{V}"/>

    <taskdef name="deploy" classname="org.apache.catalina.ant.DeployTask"/>

    <target name="war" depends="compile">
        <war destfile="${build.dir}/ordreweb.war" webxml="WebContent/WEB-INF/web.xml">
            <fileset dir="WebContent"/>
            <classes dir="${build.dir}/classes"/>
        </war>
    </target>

    <target name="deploy" depends="war">
        <deploy url="${tomcat.manager.url}" username="${tomcat.manager.username}"
                password="${tomcat.manager.password}" path="/ordreweb"
                war="file:${build.dir}/ordreweb.war" update="true"/>
    </target>
</project>
""",
    ),
    _neg(
        "legacy/lagerweb/build.xml",
        "t19_ant_ref",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<project name="lagerweb" default="dist" basedir=".">
    <property environment="env"/>
    <property file="${user.home}/.halvard/build.properties"/>
    <property name="sql.user" value="LAGERWEB"/>
    <property name="sql.password" value="{V}"/>

    <target name="migrate">
        <sql driver="oracle.jdbc.OracleDriver"
             url="jdbc:oracle:thin:@ora-prod01.halvard.local:1521:LAGPRD"
             userid="${sql.user}" password="${sql.password}"
             src="db/migrate.sql" onerror="abort"/>
    </target>
</project>
""",
    ),
    _pos(
        "legacy/weblogic/domains/ordre_domain/servers/AdminServer/security/boot.properties",
        "t19_pw",
        r"""
# Generated by Configuration Wizard on Tue Mar 05 09:14:22 CET 2019
# Written in clear text on purpose: WebLogic encrypts it on the first start.
username=weblogic
password={V}
""",
    ),
    _neg(
        "legacy/weblogic/domains/ordre_domain/servers/ManagedServer1/security/boot.properties",
        "t19_weblogic_enc",
        r"""
#Mon Jun 10 02:11:48 CEST 2024
password={V}
username={V2}
""",
    ),
    _neg(
        "legacy/weblogic/domains/ordre_domain/config/jdbc/OrdreDS-jdbc.xml",
        "t19_weblogic_enc",
        r"""
<?xml version='1.0' encoding='UTF-8'?>
<jdbc-data-source xmlns="http://xmlns.oracle.com/weblogic/jdbc-data-source">
  <name>OrdreDS</name>
  <jdbc-driver-params>
    <url>jdbc:oracle:thin:@ora-prod01.halvard.local:1521/ORDPRD</url>
    <driver-name>oracle.jdbc.xa.client.OracleXADataSource</driver-name>
    <properties>
      <property>
        <name>user</name>
        <value>ORDRE_APP</value>
      </property>
    </properties>
    <password-encrypted>{V}</password-encrypted>
  </jdbc-driver-params>
  <jdbc-connection-pool-params>
    <test-table-name>SQL SELECT 1 FROM DUAL</test-table-name>
  </jdbc-connection-pool-params>
  <jdbc-data-source-params>
    <jndi-name>jdbc/OrdreDS</jndi-name>
  </jdbc-data-source-params>
</jdbc-data-source>
""",
    ),
    _pos(
        "legacy/weblogic/scripts/create_ds.py",
        "t19_oracle_pw",
        r"""
# WLST: creates the reporting data source. Run with: wlst.sh create_ds.py
connect('weblogic', '{V}', 't3://wls-admin.halvard.local:7001')
edit()
startEdit()
cd('/')
ds = cmo.createJDBCSystemResource('RapportDS')
res = ds.getJDBCResource()
res.setName('RapportDS')
res.getJDBCDataSourceParams().setJNDINames(['jdbc/RapportDS'])
params = res.getJDBCDriverParams()
params.setUrl('jdbc:oracle:thin:@ora-prod01.halvard.local:1521/RAPPRD')
params.setDriverName('oracle.jdbc.OracleDriver')
params.setPassword('{V2}')
params.getProperties().createProperty('user').setValue('RAPPORT')
ds.addTarget(getMBean('/Servers/ManagedServer1'))
save()
activate()
""",
    ),
    _pos(
        "legacy/websphere/config/cells/halvCell01/security.xml",
        "t19_xor_pw",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<security:Security xmi:version="2.0" xmlns:xmi="http://www.omg.org/XMI"
    xmlns:security="http://www.ibm.com/websphere/appserver/schemas/5.0/security.xmi"
    enabled="true" appEnabled="true" activeProtocol="BOTH">
  <authDataEntries xmi:id="JAASAuthData_1" alias="halvCellManager01/db2lager"
      userId="lagerapp" password="{V}" description="DB2 LAGER"/>
  <authDataEntries xmi:id="JAASAuthData_2" alias="halvCellManager01/mqorder"
      userId="mqorder" password="{V2}" description="MQ ordre"/>
  <userRegistries xmi:type="security:LDAPUserRegistry" xmi:id="LDAPUserRegistry_1"
      serverId="" serverPassword="" realm="ldap.halvard.local:389"
      bindDN="cn=wasbind,ou=svc,dc=halvard,dc=local" bindPassword="{V3}"/>
</security:Security>
""",
    ),
    _neg(
        "legacy/websphere/config/cells/halvCell01/nodes/halvNode01/serverindex.xml",
        "t19_uuid",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<serverindex:ServerIndex xmi:version="2.0" xmlns:xmi="http://www.omg.org/XMI"
    xmlns:serverindex="http://www.ibm.com/websphere/appserver/schemas/5.0/serverindex.xmi"
    xmi:id="ServerIndex_1" hostName="was01.halvard.local">
  <serverEntries xmi:id="ServerEntry_1" serverDisplayName="server1" serverName="server1"
      serverType="APPLICATION_SERVER" serverUniqueId="{V}">
    <specialEndpoints xmi:id="NamedEndPoint_1" endPointName="BOOTSTRAP_ADDRESS">
      <endPoint xmi:id="EndPoint_1" host="was01.halvard.local" port="2809"/>
    </specialEndpoints>
  </serverEntries>
</serverindex:ServerIndex>
""",
    ),
    _pos(
        "legacy/jboss/standalone/configuration/standalone-ds.xml",
        "t19_pw",
        r"""
<subsystem xmlns="urn:jboss:domain:datasources:5.0">
    <datasources>
        <datasource jndi-name="java:jboss/datasources/KundeDS" pool-name="KundeDS" enabled="true">
            <connection-url>jdbc:postgresql://pg01.halvard.local:5432/kunde</connection-url>
            <driver>postgresql</driver>
            <pool>
                <min-pool-size>5</min-pool-size>
                <max-pool-size>40</max-pool-size>
            </pool>
            <security>
                <user-name>kunde_app</user-name>
                <password>{V}</password>
            </security>
        </datasource>
    </datasources>
</subsystem>
""",
    ),
    _neg(
        "legacy/jboss/standalone/configuration/standalone-vault.xml",
        "t19_jboss_mask",
        r"""
<vault>
    <vault-option name="KEYSTORE_URL" value="/opt/jboss/vault/vault.keystore"/>
    <vault-option name="KEYSTORE_PASSWORD" value="{V}"/>
    <vault-option name="KEYSTORE_ALIAS" value="vault"/>
    <vault-option name="SALT" value="8675309K"/>
    <vault-option name="ITERATION_COUNT" value="50"/>
    <vault-option name="ENC_FILE_DIR" value="/opt/jboss/vault/"/>
</vault>
<!-- datasource passwords are references into the vault -->
<security>
    <user-name>kunde_app</user-name>
    <password>${VAULT::kundeds::password::1}</password>
</security>
""",
    ),
    _pos(
        "legacy/tomcat/conf/tomcat-users.xml",
        "t19_weak_pw",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml"
              xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
              xsi:schemaLocation="http://tomcat.apache.org/xml tomcat-users.xsd"
              version="1.0">
  <role rolename="manager-gui"/>
  <role rolename="manager-script"/>
  <user username="admin" password="{V}" roles="manager-gui"/>
  <user username="deployer" password="{V2}" roles="manager-script"/>
</tomcat-users>
""",
    ),
    _neg(
        "legacy/tomcat-hardened/conf/tomcat-users.xml",
        "t19_tomcat_digest",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- Passwords are SHA-256 digests (CredentialHandler in server.xml); generate with
     bin/digest.sh -a sha-256 -i 20000 -s 16 <password> -->
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-gui"/>
  <role rolename="manager-script"/>
  <user username="admin" password="{V}" roles="manager-gui"/>
  <user username="deployer" password="{V2}" roles="manager-script"/>
</tomcat-users>
""",
    ),
    _neg(
        "legacy/tomcat/conf/Catalina/localhost/ordreweb.xml",
        "t19_tomcat_ref",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- ${...} is resolved by EnvironmentPropertySource (catalina.properties) -->
<Context path="/ordreweb" reloadable="false">
    <Resource name="jdbc/OrdreDS" auth="Container" type="javax.sql.DataSource"
              maxTotal="30" maxIdle="10" maxWaitMillis="10000"
              username="ORDREWEB" password="{V}"
              driverClassName="oracle.jdbc.OracleDriver"
              url="jdbc:oracle:thin:@ora-prod01.halvard.local:1521:ORDPRD"/>
    <Environment name="smtp/host" value="smtp.halvard.local" type="java.lang.String"/>
</Context>
""",
    ),
    _neg(
        "legacy/tomcat/conf/server.xml",
        "t19_cert_pw_ref",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<Server port="8005" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="8443" protocol="org.apache.coyote.http11.Http11NioProtocol"
               maxThreads="150" SSLEnabled="true">
      <SSLHostConfig>
        <Certificate certificateKeystoreFile="conf/ordreweb.p12"
                     certificateKeystorePassword="{V}"
                     type="RSA" />
      </SSLHostConfig>
    </Connector>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
""",
    ),
    _pos(
        "legacy/ordreweb/WebContent/admin/dbstatus.jsp",
        "t19_oracle_pw",
        r"""
<%@ page import="java.sql.*" contentType="text/html; charset=UTF-8" %>
<%
    // quick status page -- DO NOT LINK FROM THE MENU
    Class.forName("oracle.jdbc.OracleDriver");
    Connection c = DriverManager.getConnection(
        "jdbc:oracle:thin:@ora-prod01.halvard.local:1521:ORDPRD", "ORDREWEB", "{V}");
    Statement st = c.createStatement();
    ResultSet rs = st.executeQuery("select count(*) from ordre where status = 'NY'");
    rs.next();
%>
<html>
<body>
<h1>Ordre-database</h1>
<p>Nye ordre: <%= rs.getInt(1) %></p>
</body>
</html>
<% rs.close(); st.close(); c.close(); %>
""",
    ),
    _neg(
        "legacy/ordreweb/WebContent/login.jsp",
        "t19_i18n",
        r"""
<%@ taglib uri="/tags/struts-html" prefix="html" %>
<%@ taglib uri="/tags/struts-bean" prefix="bean" %>
<html:html>
<head><title><bean:message key="login.title"/></title></head>
<body>
<html:form action="/login" focus="username">
  <table>
    <tr><td><bean:message key="login.username"/></td><td><html:text property="username"/></td></tr>
    <tr><td>{V}</td><td><html:password property="password" redisplay="false"/></td></tr>
  </table>
  <html:submit><bean:message key="login.submit"/></html:submit>
</html:form>
</body>
</html:html>
""",
    ),
    _neg(
        "legacy/ordreweb/WebContent/WEB-INF/struts-config.xml",
        "t19_form_field",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE struts-config PUBLIC "-//Apache Software Foundation//DTD Struts Configuration 1.3//EN"
    "http://struts.apache.org/dtds/struts-config_1_3.dtd">
<struts-config>
  <form-beans>
    <form-bean name="loginForm" type="org.apache.struts.validator.DynaValidatorForm">
      <form-property name="username" type="java.lang.String"/>
      <form-property name="{V}" type="java.lang.String"/>
    </form-bean>
  </form-beans>
  <action-mappings>
    <action path="/login" type="no.halvard.ordre.web.LoginAction" name="loginForm"
            scope="request" validate="true" input="/login.jsp">
      <forward name="success" path="/ordre/list.do" redirect="true"/>
    </action>
  </action-mappings>
  <message-resources parameter="ApplicationResources"/>
</struts-config>
""",
    ),
    _pos(
        "legacy/intranet/web.config",
        "t19_pw",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="Intranet" connectionString="Data Source=SQL02;Initial Catalog=Intranet;User ID=intranet_web;Password={V};MultipleActiveResultSets=True" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="SmtpServer" value="smtp.halvard.local" />
    <add key="SmtpUser" value="intranet@halvard.no" />
    <add key="SmtpPassword" value="{V2}" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.7.2" />
    <authentication mode="Forms">
      <forms loginUrl="~/Login.aspx" timeout="60" />
    </authentication>
  </system.web>
</configuration>
""",
    ),
    _pos(
        "legacy/intranet/web.machinekey.config",
        "t19_machine_key",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<!-- Shared by the three intranet web servers behind the load balancer -->
<machineKey validationKey="{V}"
            decryptionKey="{V2}"
            validation="HMACSHA256" decryption="AES" />
""",
    ),
    _neg(
        "legacy/intranet-dev/web.machinekey.config",
        "t19_autogen",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<!-- Dev boxes: let IIS generate the keys per application -->
<machineKey validationKey="{V}"
            decryptionKey="{V2}"
            validation="HMACSHA256" decryption="AES" />
""",
    ),
    _neg(
        "legacy/intranet/web.Release.config",
        "t19_dotnet_ref",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <connectionStrings>
    <add name="Intranet"
         connectionString="Data Source=SQL02;Initial Catalog=Intranet;User ID=intranet_web;Password={V};"
         xdt:Transform="SetAttributes" xdt:Locator="Match(name)" />
  </connectionStrings>
  <appSettings>
    <add key="SmtpPassword" value="{V2}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
  </appSettings>
  <system.web>
    <compilation xdt:Transform="RemoveAttributes(debug)" />
  </system.web>
</configuration>
""",
    ),
    _neg(
        "legacy/fakturaweb/web.config",
        "t19_dpapi_cipher",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings configProtectionProvider="RsaProtectedConfigurationProvider">
    <EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element"
      xmlns="http://www.w3.org/2001/04/xmlenc#">
      <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc" />
      <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
        <EncryptedKey xmlns="http://www.w3.org/2001/04/xmlenc#">
          <EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" />
          <KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">
            <KeyName>Rsa Key</KeyName>
          </KeyInfo>
          <CipherData>
            <CipherValue>{V}</CipherValue>
          </CipherData>
        </EncryptedKey>
      </KeyInfo>
      <CipherData>
        <CipherValue>{V2}</CipherValue>
      </CipherData>
    </EncryptedData>
  </connectionStrings>
</configuration>
""",
    ),
    _pos(
        "legacy/asp/include/conn.asp",
        "t19_weak_pw",
        r"""
<%
' Database connection used by every page (included from header.asp)
Dim conn, connStr
connStr = "Provider=SQLOLEDB;Data Source=SQL01;Initial Catalog=Medlem;User Id=medlem_web;Password={V};"
Set conn = Server.CreateObject("ADODB.Connection")
conn.Open connStr

Function CloseConn()
    If IsObject(conn) Then
        conn.Close
        Set conn = Nothing
    End If
End Function
%>
""",
    ),
    _neg(
        "legacy/asp/include/conn.example.asp",
        "t19_doc_url",
        r"""
<%
' Example only -- copy to conn.asp. See docs/oppsett.md.
' Any URL style works with the helper in lib/dsn.asp:
Dim exampleDsn
exampleDsn = "{V}"
Set conn = Server.CreateObject("ADODB.Connection")
conn.Open DsnToConnString(exampleDsn)
%>
""",
    ),
    _pos(
        "legacy/perl/cgi-bin/medlem_sok.cgi",
        "t19_pw",
        r"""
#!/usr/bin/perl -w
use strict;
use CGI qw(:standard);
use DBI;

my $dbh = DBI->connect(
    "DBI:mysql:database=medlem;host=mysql01.halvard.local",
    "medlem_ro", "{V}",
    { RaiseError => 1, AutoCommit => 1, mysql_enable_utf8 => 1 }
) or die $DBI::errstr;

my $q = CGI->new;
my $navn = $q->param('navn') || '';
my $sth = $dbh->prepare("SELECT id, navn, epost FROM medlem WHERE navn LIKE ? LIMIT 50");
$sth->execute("%$navn%");

print $q->header(-charset => 'utf-8');
while (my $row = $sth->fetchrow_hashref) {
    print "<p>$row->{navn} &lt;$row->{epost}&gt;</p>\n";
}
$dbh->disconnect;
""",
    ),
    _neg(
        "legacy/perl/lib/Halvard/DB.pm",
        "t19_perl_ref",
        r"""
package Halvard::DB;
use strict;
use warnings;
use DBI;
use Config::Tiny;

my $cfg = Config::Tiny->read('/etc/halvard/db.ini');

sub connect_medlem {
    my $dbpass = $cfg->{medlem}{password};
    return DBI->connect(
        "DBI:mysql:database=medlem;host=$cfg->{medlem}{host}",
        $cfg->{medlem}{user}, {V},
        { RaiseError => 1, AutoCommit => 1 },
    );
}

1;
""",
    ),
    _neg(
        "legacy/perl/scripts/ora_nightly.pl",
        "t19_perl_ref",
        r"""
#!/usr/bin/perl
use strict;
use warnings;
use DBI;

$ENV{ORACLE_HOME} = '/u01/app/oracle/product/11.2.0/client_1';
my $dbh = DBI->connect('dbi:Oracle:host=ora-prod01.halvard.local;sid=ORDPRD;port=1521',
                       'RAPPORT', {V}, { RaiseError => 1, AutoCommit => 0 });

my $rows = $dbh->do(q{
    INSERT INTO rapport_dag (dato, antall, sum_belop)
    SELECT TRUNC(SYSDATE - 1), COUNT(*), SUM(belop) FROM ordre
    WHERE opprettet >= TRUNC(SYSDATE - 1) AND opprettet < TRUNC(SYSDATE)
});
$dbh->commit;
print "rapport_dag: $rows\n";
$dbh->disconnect;
""",
    ),
    _pos(
        "legacy/coldfusion/Application.cfc",
        "t19_pw",
        r"""
component {
    this.name = "halvardMedlem";
    this.sessionManagement = true;
    this.sessionTimeout = createTimeSpan(0, 1, 0, 0);

    this.datasources["medlem"] = {
        class: "com.microsoft.sqlserver.jdbc.SQLServerDriver",
        connectionString: "jdbc:sqlserver://SQL01:1433;DatabaseName=Medlem",
        username: "medlem_cf",
        password: "{V}"
    };
    this.datasource = "medlem";

    function onApplicationStart() {
        application.mailServer = "smtp.halvard.local";
        return true;
    }
}
""",
    ),
    _neg(
        "legacy/coldfusion/admin/sync.cfm",
        "t19_cf_ref",
        r"""
<cfsetting requesttimeout="600">
<cfquery name="qMedlem" datasource="medlem">
    SELECT id, navn, epost FROM medlem WHERE endret > <cfqueryparam value="#dateAdd('d', -1, now())#" cfsqltype="cf_sql_timestamp">
</cfquery>

<cfhttp url="https://crm.halvard.local/api/import" method="post"
        username="cfsync" password="{V}" result="res">
    <cfhttpparam type="header" name="Content-Type" value="application/json">
    <cfhttpparam type="body" value="#serializeJSON(qMedlem)#">
</cfhttp>
<cfoutput>Status: #res.statusCode#</cfoutput>
""",
    ),
    _pos(
        "legacy/batch/ora/nightly_extract.sh",
        "t19_oracle_pw",
        r"""
#!/bin/ksh
# Nightly extract to the data warehouse. cron: 15 2 * * *
. /home/oracle/.profile
export NLS_LANG=NORWEGIAN_NORWAY.AL32UTF8
OUT=/data/extract/ordre_$(date +%Y%m%d).csv

sqlplus -s ORDRE_EXTRACT/{V}@ORDPRD <<EOF > $OUT
set pagesize 0 feedback off heading off trimspool on linesize 400
select ordre_id||';'||kunde_id||';'||to_char(dato,'YYYY-MM-DD')||';'||belop
  from ordre where dato >= trunc(sysdate) - 1;
exit
EOF

gzip -f $OUT
""",
    ),
    _neg(
        "legacy/batch/ora/nightly_extract_wallet.sh",
        "t19_shell_ref",
        r"""
#!/bin/ksh
# Same extract, but the password comes from the Oracle wallet (mkstore) or the vault agent.
. /home/oracle/.profile
export TNS_ADMIN=/home/oracle/wallet
OUT=/data/extract/kunde_$(date +%Y%m%d).csv
ORA_PW={V}

sqlplus -s /@ORDPRD_EXTRACT <<EOF > $OUT
set pagesize 0 feedback off heading off
select kunde_id||';'||navn from kunde where endret >= trunc(sysdate) - 1;
exit
EOF
""",
    ),
    _neg(
        "legacy/batch/ora/refresh_test.bat",
        "t19_bat_ref",
        r"""
@echo off
REM The SYSTEM password is set by the scheduler job (never stored here).
REM Refreshes ORDTST from last night's export. Run on ora-test01 as oracle.
set ORACLE_SID=ORDTST
set NLS_LANG=NORWEGIAN_NORWAY.WE8MSWIN1252

impdp system/{V}@ORDTST directory=DATA_PUMP_DIR dumpfile=ordprd_%DATE:~-4%%DATE:~3,2%%DATE:~0,2%.dmp ^
  schemas=ORDRE remap_schema=ORDRE:ORDRE table_exists_action=replace logfile=refresh.log

sqlplus -s system/{V}@ORDTST @reset_test_users.sql
echo Done.
""",
    ),
    _neg(
        "legacy/batch/ora/create_users.sql",
        "t19_oracle_verifier",
        r"""
-- Recreates the application users on a fresh ORDTST. Verifiers copied from
-- dba_users/sys.user$ on prod so the same passwords keep working in test.
CREATE USER ORDREWEB IDENTIFIED BY VALUES '{V}'
  DEFAULT TABLESPACE ORDRE_DATA TEMPORARY TABLESPACE TEMP;
GRANT CONNECT, ORDRE_RW TO ORDREWEB;

CREATE USER RAPPORT IDENTIFIED BY VALUES '{V2}'
  DEFAULT TABLESPACE ORDRE_DATA TEMPORARY TABLESPACE TEMP;
GRANT CONNECT, ORDRE_RO TO RAPPORT;
""",
    ),
    _pos(
        "legacy/batch/db2/lager_reorg.sh",
        "t19_pw",
        r"""
#!/bin/sh
# Weekly REORG/RUNSTATS of the LAGER database. Runs as db2inst1 on db2lager.
. /home/db2inst1/sqllib/db2profile

db2 connect to LAGER user lagerdba using '{V}'
for t in VARE LAGERBEHOLDNING BEVEGELSE; do
    db2 "REORG TABLE LAGER.$t"
    db2 "RUNSTATS ON TABLE LAGER.$t WITH DISTRIBUTION AND DETAILED INDEXES ALL"
done
db2 connect reset
""",
    ),
    _neg(
        "legacy/batch/db2/lager_export.sh",
        "t19_shell_ref",
        r"""
#!/bin/sh
# Export for the BI team. Credentials come from the batch scheduler (Control-M variables).
. /home/db2inst1/sqllib/db2profile
DB2_USER=lagerrd
DB2_PASSWORD={V}

db2 connect to LAGER user "$DB2_USER" using "$DB2_PASSWORD"
db2 "EXPORT TO /data/bi/vare.del OF DEL SELECT * FROM LAGER.VARE"
db2 connect reset
""",
    ),
    _pos(
        "legacy/sql/linked_server.sql",
        "t19_pw",
        r"""
-- Linked server from SQL02 (intranet) to the old Access-era SQL01 for the member lookup.
EXEC master.dbo.sp_addlinkedserver
    @server = N'SQL01', @srvproduct = N'SQL Server';

EXEC master.dbo.sp_addlinkedsrvlogin
    @rmtsrvname = N'SQL01',
    @useself = N'False',
    @locallogin = NULL,
    @rmtuser = N'intranet_link',
    @rmtpassword = N'{V}';

CREATE LOGIN intranet_web WITH PASSWORD = N'{V2}', CHECK_POLICY = OFF;
GO
""",
    ),
    _neg(
        "legacy/sql/users_dump.sql",
        "t19_mysql_hash",
        r"""
-- MySQL 5.7 grants dumped with pt-show-grants before the upgrade to 8.0
CREATE USER IF NOT EXISTS 'medlem_ro'@'%' IDENTIFIED WITH 'mysql_native_password' AS '{V}';
GRANT SELECT ON `medlem`.* TO 'medlem_ro'@'%';
CREATE USER IF NOT EXISTS 'kundeportal'@'10.0.%' IDENTIFIED WITH 'mysql_native_password' AS '{V2}';
GRANT SELECT, INSERT, UPDATE, DELETE ON `kundeportal`.* TO 'kundeportal'@'10.0.%';
""",
    ),
]

# ---------------------------------------------------------------------- PHP CMSs and frameworks
_CMS: list[evalset.Template] = [
    _pos(
        "cms/halvard-blog/wp-config.php",
        "t19_wp_salt",
        r"""
<?php
define( 'DB_NAME', 'halvard_blog' );
define( 'DB_USER', 'wp_halv' );
define( 'DB_PASSWORD', getenv( 'WORDPRESS_DB_PASSWORD' ) );
define( 'DB_HOST', 'mysql02.halvard.local' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );

define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V2}' );
define( 'LOGGED_IN_KEY',    '{V3}' );
define( 'NONCE_KEY',        '{V4}' );
define( 'AUTH_SALT',        '{V5}' );
define( 'SECURE_AUTH_SALT', '{V6}' );
define( 'LOGGED_IN_SALT',   '{V7}' );
define( 'NONCE_SALT',       '{V8}' );

$table_prefix = 'hb_';
define( 'WP_DEBUG', false );

if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
""",
    ),
    _neg(
        "cms/makers-shop/wp-config-sample.php",
        "t19_wp_default",
        r"""
<?php
define( 'DB_NAME', 'database_name_here' );
define( 'DB_USER', 'username_here' );
define( 'DB_PASSWORD', 'password_here' );
define( 'DB_HOST', 'localhost' );

/**#@+
 * Authentication unique keys and salts.
 * Change these to different unique phrases! You can generate these using
 * the {@link https://api.wordpress.org/secret-key/1.1/salt/ WordPress.org secret-key service}.
 */
define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V}' );
define( 'LOGGED_IN_KEY',    '{V}' );
define( 'NONCE_KEY',        '{V}' );
define( 'AUTH_SALT',        '{V}' );
define( 'SECURE_AUTH_SALT', '{V}' );
define( 'LOGGED_IN_SALT',   '{V}' );
define( 'NONCE_SALT',       '{V}' );
/**#@-*/

$table_prefix = 'wp_';
""",
    ),
    _neg(
        "cms/halvard-blog/wp-config.docker.php",
        "t19_php_ref",
        r"""
<?php
// Used by the official wordpress image: everything comes from the container environment.
define( 'DB_NAME', getenv_docker( 'WORDPRESS_DB_NAME', 'wordpress' ) );
define( 'DB_USER', getenv_docker( 'WORDPRESS_DB_USER', 'example username' ) );
define( 'DB_PASSWORD', {V} );
define( 'DB_HOST', getenv_docker( 'WORDPRESS_DB_HOST', 'mysql' ) );
define( 'AUTH_KEY', getenv_docker( 'WORDPRESS_AUTH_KEY', '' ) );
define( 'SECURE_AUTH_KEY', getenv_docker( 'WORDPRESS_SECURE_AUTH_KEY', '' ) );
$table_prefix = getenv_docker( 'WORDPRESS_TABLE_PREFIX', 'wp_' );
require_once ABSPATH . 'wp-settings.php';
""",
    ),
    _neg(
        "cms/halvard-blog/db/hb_users.sql",
        "t19_phpass",
        r"""
-- Dump of hb_users for the staging refresh (emails scrambled with anonymize.sql)
INSERT INTO `hb_users` (`ID`, `user_login`, `user_pass`, `user_nicename`, `user_email`, `user_registered`, `user_status`, `display_name`) VALUES
(1, 'halvard', '{V}', 'halvard', 'user1@staging.invalid', '2016-04-11 09:12:44', 0, 'Halvard'),
(2, 'kestrel', '{V2}', 'kestrel', 'user2@staging.invalid', '2018-09-02 18:40:01', 0, 'Kestrel'),
(3, 'redaksjon', '{V3}', 'redaksjon', 'user3@staging.invalid', '2020-01-15 07:55:19', 0, 'Redaksjonen');
""",
    ),
    _pos(
        "cms/makers-shop/wp-content/plugins/halvard-checkout/includes/class-payment.php",
        "t19_stripe",
        r"""
<?php
defined( 'ABSPATH' ) || exit;

class Halvard_Checkout_Payment {
	const STRIPE_SECRET = '{V}';

	public function create_intent( WC_Order $order ) {
		\Stripe\Stripe::setApiKey( self::STRIPE_SECRET );
		return \Stripe\PaymentIntent::create( array(
			'amount'   => (int) round( $order->get_total() * 100 ),
			'currency' => strtolower( $order->get_currency() ),
			'metadata' => array( 'order_id' => $order->get_id() ),
		) );
	}
}
""",
    ),
    _neg(
        "cms/makers-shop/wp-content/plugins/halvard-checkout/assets/js/checkout.js",
        "t19_stripe_pk",
        r"""
/* global Stripe */
(function () {
  // Publishable key: meant to be in the browser.
  var stripe = Stripe('{V}');
  var elements = stripe.elements({ locale: 'nb' });
  var card = elements.create('card', { hidePostalCode: true });
  card.mount('#halvard-card-element');

  document.querySelector('#halvard-pay').addEventListener('click', function (ev) {
    ev.preventDefault();
    stripe.confirmCardPayment(window.halvardCheckout.clientSecret, {
      payment_method: { card: card },
    });
  });
})();
""",
    ),
    _pos(
        "cms/makers-shop/wp-content/mu-plugins/mailgun-smtp.php",
        "t19_mailgun",
        r"""
<?php
/**
 * Plugin Name: Halvard Mailgun SMTP
 */
add_action( 'phpmailer_init', function ( $phpmailer ) {
	$phpmailer->isSMTP();
	$phpmailer->Host       = 'smtp.eu.mailgun.org';
	$phpmailer->SMTPAuth   = true;
	$phpmailer->Port       = 587;
	$phpmailer->SMTPSecure = 'tls';
	$phpmailer->Username   = 'postmaster@mg.makers-shop.no';
	$phpmailer->Password   = '{V}';
	$phpmailer->From       = 'butikk@makers-shop.no';
	$phpmailer->FromName   = 'Makers Shop';
} );
""",
    ),
    _pos(
        "cms/makers-shop/wp-content/plugins/halvard-contact/halvard-contact.php",
        "t19_recaptcha_secret",
        r"""
<?php
/**
 * Plugin Name: Halvard Contact
 */
define( 'HALVARD_RECAPTCHA_SITE', get_option( 'halvard_recaptcha_site' ) );
const HALVARD_RECAPTCHA_SECRET = '{V}';

function halvard_contact_verify( $token ) {
	$res = wp_remote_post( 'https://www.google.com/recaptcha/api/siteverify', array(
		'body' => array(
			'secret'   => HALVARD_RECAPTCHA_SECRET,
			'response' => $token,
			'remoteip' => $_SERVER['REMOTE_ADDR'],
		),
	) );
	$body = json_decode( wp_remote_retrieve_body( $res ), true );
	return ! empty( $body['success'] ) && $body['score'] >= 0.5;
}
""",
    ),
    _neg(
        "cms/makers-shop/wp-content/themes/makers/template-parts/contact-form.php",
        "t19_recaptcha_site",
        r"""
<?php defined( 'ABSPATH' ) || exit; ?>
<form id="kontakt" method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
  <input type="hidden" name="action" value="halvard_contact">
  <label for="navn"><?php esc_html_e( 'Navn', 'makers' ); ?></label>
  <input id="navn" name="navn" required>
  <label for="melding"><?php esc_html_e( 'Melding', 'makers' ); ?></label>
  <textarea id="melding" name="melding" rows="6" required></textarea>
  <div class="g-recaptcha" data-sitekey="{V}"></div>
  <button type="submit"><?php esc_html_e( 'Send', 'makers' ); ?></button>
</form>
<script src="https://www.google.com/recaptcha/api.js" async defer></script>
""",
    ),
    _neg(
        "cms/makers-shop/wp-content/plugins/halvard-contact/config.dev.php",
        "t19_recaptcha_test",
        r"""
<?php
// Local development: Google's documented reCAPTCHA v2 test keys. Every check passes and
// the widget shows "This reCAPTCHA is for testing purposes only".
// https://developers.google.com/recaptcha/docs/faq
return array(
	'recaptcha_site'   => '{V}',
	'recaptcha_secret' => '{V2}',
	'debug'            => true,
);
""",
    ),
    _pos(
        "cms/forening/sites/default/settings.php",
        "t19_drupal_salt",
        r"""
<?php

$databases['default']['default'] = [
  'database' => 'forening',
  'username' => 'drupal',
  'password' => getenv('DRUPAL_DB_PASSWORD'),
  'prefix' => '',
  'host' => 'mysql02.halvard.local',
  'port' => '3306',
  'driver' => 'mysql',
  'namespace' => 'Drupal\\mysql\\Driver\\Database\\mysql',
];

/**
 * Salt for one-time login links, cancel links, form tokens, etc.
 */
$settings['hash_salt'] = '{V}';

$settings['config_sync_directory'] = '../config/sync';
$settings['trusted_host_patterns'] = ['^forening\.halvard\.no$'];
$settings['file_private_path'] = '/var/www/private';
""",
    ),
    _neg(
        "cms/forening-d7/sites/default/settings.php",
        "t19_php_ref",
        r"""
<?php
$databases = array (
  'default' =>
  array (
    'default' =>
    array (
      'database' => 'forening_d7',
      'username' => 'forening',
      'password' => {V},
      'host' => 'localhost',
      'port' => '',
      'driver' => 'mysql',
      'prefix' => '',
    ),
  ),
);
$drupal_hash_salt = '';
$conf['404_fast_html'] = '<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>';
""",
    ),
    _neg(
        "cms/forening-d7/scripts/users_export.csv",
        "t19_drupal_hash",
        r"""
uid,name,pass,mail,status,created
1,admin,{V},admin@forening.invalid,1,1389093124
2,styret,{V2},styret@forening.invalid,1,1401200533
3,kasserer,{V3},kasserer@forening.invalid,1,1422009871
""",
    ),
    _neg(
        "cms/forening/sites/default/settings.local.php",
        "t19_placeholder",
        r"""
<?php
// Local overrides for ddev. Do not put production values here.
$databases['default']['default'] = [
  'database' => 'db',
  'username' => 'db',
  'password' => '{V}',
  'host' => 'db',
  'driver' => 'mysql',
];
$settings['hash_salt'] = '{V2}';
$config['system.logging']['error_level'] = 'verbose';
$settings['cache']['bins']['render'] = 'cache.backend.null';
""",
    ),
    _pos(
        "cms/klubb/configuration.php",
        "t19_joomla_secret",
        r"""
<?php
class JConfig {
	public $offline = false;
	public $sitename = 'Halvard Klubb';
	public $editor = 'tinymce';
	public $dbtype = 'mysqli';
	public $host = 'localhost';
	public $user = 'klubb_j';
	public $password = '{V2}';
	public $db = 'klubb';
	public $dbprefix = 'hk7_';
	public $secret = '{V}';
	public $mailer = 'smtp';
	public $smtpauth = true;
	public $smtpuser = 'post@halvardklubb.no';
	public $smtphost = 'smtp.domeneshop.no';
	public $log_path = '/var/www/klubb/administrator/logs';
	public $tmp_path = '/var/www/klubb/tmp';
	public $lifetime = 30;
}
""",
    ),
    _neg(
        "cms/klubb/sql/hk7_users.sql",
        "t19_joomla_hash",
        r"""
-- Users carried over from Joomla 1.5 (md5:salt hashes, rehashed to bcrypt on next login)
INSERT INTO `hk7_users` (`id`, `name`, `username`, `email`, `password`, `block`, `registerDate`) VALUES
(42, 'Super User', 'admin', 'admin@klubb.invalid', '{V}', 0, '2011-02-03 10:00:00'),
(43, 'Kasserer', 'kasserer', 'kasserer@klubb.invalid', '{V2}', 0, '2012-08-19 14:22:10');
""",
    ),
    _pos(
        "cms/verksted-butikk/app/etc/env.php",
        "t19_magento_key",
        r"""
<?php
return [
    'backend' => ['frontName' => 'admin_h4lv'],
    'crypt' => [
        'key' => '{V}'
    ],
    'db' => [
        'table_prefix' => '',
        'connection' => [
            'default' => [
                'host' => 'mysql03.halvard.local',
                'dbname' => 'magento',
                'username' => 'magento',
                'password' => getenv('MAGENTO_DB_PASSWORD'),
                'model' => 'mysql4',
                'active' => '1'
            ]
        ]
    ],
    'MAGE_MODE' => 'production',
    'session' => ['save' => 'files'],
    'install' => ['date' => 'Thu, 07 Jan 2021 12:40:11 +0000']
];
""",
    ),
    _pos(
        "cms/reservedeler/app/config/parameters.php",
        "t19_ps_cookie_key",
        r"""
<?php return array (
  'parameters' =>
  array (
    'database_host' => '127.0.0.1',
    'database_port' => '',
    'database_name' => 'prestashop',
    'database_user' => 'ps_user',
    'database_password' => getenv('PS_DB_PASSWORD'),
    'database_prefix' => 'ps_',
    'database_engine' => 'InnoDB',
    'mailer_transport' => 'smtp',
    'mailer_host' => '127.0.0.1',
    'secret' => '{V}',
    'ps_caching' => 'CacheMemcache',
    'ps_cache_enable' => false,
    'ps_creation_date' => '2019-05-22',
    'locale' => 'nb-NO',
    'cookie_key' => '{V2}',
  ),
);
""",
    ),
    _neg(
        "legacy/ci-app/application/config/database.php",
        "t19_php_ref",
        r"""
<?php
defined('BASEPATH') OR exit('No direct script access allowed');

$active_group = 'default';
$query_builder = TRUE;

$db['default'] = array(
	'dsn'	=> '',
	'hostname' => 'mysql01.halvard.local',
	'username' => 'timeliste',
	'password' => {V},
	'database' => 'timeliste',
	'dbdriver' => 'mysqli',
	'dbprefix' => '',
	'pconnect' => FALSE,
	'db_debug' => (ENVIRONMENT !== 'production'),
	'char_set' => 'utf8',
	'dbcollat' => 'utf8_general_ci',
);
""",
    ),
    _pos(
        "legacy/ci-app/application/config/config.php",
        "t19_ci_key",
        r"""
<?php
defined('BASEPATH') OR exit('No direct script access allowed');

$config['base_url'] = 'https://timeliste.halvard.no/';
$config['index_page'] = '';
$config['uri_protocol']	= 'REQUEST_URI';
$config['language']	= 'norwegian';
$config['charset'] = 'UTF-8';

/*
| Encryption Key -- used by the Encryption library and encrypted sessions.
*/
$config['encryption_key'] = {V};

$config['sess_driver'] = 'database';
$config['sess_cookie_name'] = 'tl_session';
$config['sess_expiration'] = 7200;
$config['sess_save_path'] = 'ci_sessions';
""",
    ),
    _pos(
        "legacy/cake-booking/config/app_local.php",
        "t19_cake_salt",
        r"""
<?php
return [
    'debug' => filter_var(env('DEBUG', false), FILTER_VALIDATE_BOOLEAN),

    'Security' => [
        'salt' => env('SECURITY_SALT', '{V}'),
    ],

    'Datasources' => [
        'default' => [
            'host' => 'localhost',
            'username' => 'booking',
            'password' => env('DB_PASSWORD'),
            'database' => 'booking',
            'url' => env('DATABASE_URL', null),
        ],
    ],

    'EmailTransport' => [
        'default' => ['host' => 'localhost', 'port' => 25],
    ],
];
""",
    ),
    _neg(
        "legacy/cake-booking/config/app_local.example.php",
        "t19_php_ref",
        r"""
<?php
return [
    'debug' => filter_var(env('DEBUG', true), FILTER_VALIDATE_BOOLEAN),
    'Security' => [
        'salt' => env('SECURITY_SALT', '__SALT__'),
    ],
    'Datasources' => [
        'default' => [
            'host' => 'localhost',
            'username' => 'my_app',
            'password' => {V},
            'database' => 'my_app',
        ],
    ],
];
""",
    ),
    _pos(
        "legacy/yii-portal/config/web.php",
        "t19_yii_key",
        r"""
<?php
$params = require __DIR__ . '/params.php';
$db = require __DIR__ . '/db.php';

$config = [
    'id' => 'halvard-portal',
    'basePath' => dirname(__DIR__),
    'language' => 'nb-NO',
    'components' => [
        'request' => [
            // !!! insert a secret key in the following (if it is empty) - this is required by cookie validation
            'cookieValidationKey' => '{V}',
        ],
        'cache' => ['class' => 'yii\caching\FileCache'],
        'user' => ['identityClass' => 'app\models\User', 'enableAutoLogin' => true],
        'db' => $db,
    ],
    'params' => $params,
];

return $config;
""",
    ),
    _neg(
        "legacy/yii-portal/config/db.php",
        "t19_php_ref",
        r"""
<?php

return [
    'class' => 'yii\db\Connection',
    'dsn' => 'pgsql:host=pg01.halvard.local;port=5432;dbname=portal',
    'username' => 'portal',
    'password' => {V},
    'charset' => 'utf8',
    'enableSchemaCache' => true,
    'schemaCacheDuration' => 3600,
];
""",
    ),
    _neg(
        "legacy/zend-crm/config/autoload/local.php.dist",
        "t19_placeholder",
        r"""
<?php
/**
 * Local configuration. Copy to local.php and set the credentials for your box.
 * local.php is in .gitignore.
 */
return [
    'db' => [
        'driver'   => 'Pdo_Mysql',
        'dsn'      => 'mysql:dbname=crm;host=localhost;charset=utf8',
        'username' => 'crm',
        'password' => '{V}',
    ],
    'mail' => [
        'transport' => ['options' => ['connection_config' => ['password' => '{V2}']]],
    ],
];
""",
    ),
    _pos(
        "legacy/zend-crm/config/autoload/local.php",
        "t19_pw",
        r"""
<?php
return [
    'db' => [
        'driver'   => 'Pdo_Mysql',
        'dsn'      => 'mysql:dbname=crm;host=mysql01.halvard.local;charset=utf8',
        'username' => 'crm',
        'password' => '{V}',
    ],
    'mail' => [
        'transport' => [
            'options' => [
                'host' => 'smtp.halvard.local',
                'connection_class'  => 'login',
                'connection_config' => ['username' => 'crm@halvard.no', 'password' => '{V2}', 'ssl' => 'tls'],
            ],
        ],
    ],
];
""",
    ),
    _pos(
        "tools/phpmyadmin/config.inc.php",
        "t19_yii_key",
        r"""
<?php
/**
 * phpMyAdmin configuration for the legacy MySQL boxes
 */
$cfg['blowfish_secret'] = '{V}';

$i = 0;
$i++;
$cfg['Servers'][$i]['auth_type'] = 'cookie';
$cfg['Servers'][$i]['host'] = 'mysql01.halvard.local';
$cfg['Servers'][$i]['compress'] = false;
$cfg['Servers'][$i]['AllowNoPassword'] = false;

$cfg['UploadDir'] = '';
$cfg['SaveDir'] = '';
$cfg['TempDir'] = '/tmp/pma';
""",
    ),
    _neg(
        "cms/klubb/.htpasswd",
        "t19_bcrypt",
        r"""
styret:{V}
kasserer:{V2}
""",
    ),
    _pos(
        "cms/makers-shop/docker-compose.test.yml",
        "t19_weak_pw",
        r"""
# Throwaway stack for the Playwright tests (runs on the shared CI runner, port 8081 is open)
services:
  db:
    image: mariadb:10.11
    environment:
      MARIADB_ROOT_PASSWORD: {V}
      MARIADB_DATABASE: makers_shop
      MARIADB_USER: shop_wp
      MARIADB_PASSWORD: {V2}
  wordpress:
    image: wordpress:6.4-php8.2
    ports: ["8081:80"]
    environment:
      WORDPRESS_DB_HOST: db
      WORDPRESS_DB_USER: shop_wp
      WORDPRESS_DB_PASSWORD: {V2}
      WORDPRESS_DB_NAME: makers_shop
""",
    ),
    _neg(
        "cms/makers-shop/tests/e2e/fixtures/users.json",
        "t19_fake_test",
        r"""
{
  "customer": {
    "email": "kunde@makers-shop.test",
    "password": "{V}"
  },
  "shopManager": {
    "email": "butikk@makers-shop.test",
    "password": "{V2}"
  },
  "note": "Seeded by tests/e2e/seed.php into the throwaway database only"
}
""",
    ),
    _neg(
        "cms/halvard-blog/.gitlab-ci.yml",
        "t19_gitlab_ref",
        r"""
stages: [deploy]

deploy_prod:
  stage: deploy
  image: alpine:3.19
  variables:
    SSH_HOST: web01.halvard.no
    DEPLOY_TOKEN: "{V}"
  script:
    - apk add --no-cache openssh-client rsync
    - eval $(ssh-agent -s)
    - echo "$SSH_PRIVATE_KEY" | tr -d '\r' | ssh-add -
    - rsync -az --delete wp-content/ deploy@$SSH_HOST:/var/www/blog/wp-content/
  only: [main]
""",
    ),
]

# ---------------------------------------------------------------------- CI, ops, keys, docs, chat
_OPS: list[evalset.Template] = [
    _pos(
        "legacy/ordreweb/Jenkinsfile",
        "t19_slack_webhook",
        r"""
pipeline {
    agent { label 'ant' }
    environment {
        SLACK_HOOK = '{V}'
    }
    stages {
        stage('Build') {
            steps { sh 'ant clean war' }
        }
        stage('Deploy test') {
            when { branch 'develop' }
            steps { sh 'ant -Dtomcat.manager.url=http://app-test01:8080/manager/text deploy' }
        }
    }
    post {
        failure {
            sh "curl -s -X POST -H 'Content-type: application/json' --data '{\"text\":\"ordreweb build ${env.BUILD_NUMBER} failed\"}' ${SLACK_HOOK}"
        }
    }
}
""",
    ),
    _neg(
        "legacy/kundeportal/Jenkinsfile",
        "t19_jenkins_ref",
        r"""
pipeline {
    agent { label 'maven' }
    stages {
        stage('Build') {
            steps { sh 'mvn -B -DskipTests package' }
        }
        stage('Deploy') {
            steps {
                withCredentials([usernamePassword(credentialsId: 'jboss-deployer',
                                                  usernameVariable: 'JBOSS_USER',
                                                  passwordVariable: 'JBOSS_PASS')]) {
                    sh "/opt/jboss/bin/jboss-cli.sh --connect --user=$JBOSS_USER --password={V} --command='deploy target/kundeportal.war --force'"
                }
            }
        }
    }
}
""",
    ),
    _pos(
        "ops/backup/nas-s3/.aws/credentials",
        "t19_aws_ini_pair",
        r"""
[default]
region = eu-north-1

[nas-backup]
{V}
region = eu-north-1
""",
    ),
    _pos(
        "ops/backup/nas-s3/restic.env",
        "t19_aws_env_pair",
        r"""
# Sourced by restic-backup.service on the NAS
RESTIC_REPOSITORY=s3:s3.eu-north-1.amazonaws.com/halvard-nas-restic
{V}
RESTIC_PASSWORD_FILE=/etc/restic/password
RESTIC_CACHE_DIR=/var/cache/restic
""",
    ),
    _neg(
        "ops/backup/nas-s3/README.md",
        "t19_example_aws",
        r"""
# NAS offsite backup (restic to S3)

1. Create an IAM user with only `s3:*` on the `halvard-nas-restic` bucket.
2. Put its keys in `restic.env` on the NAS (not in git). They look like the AWS
   documentation's example pair:

```
{IV}
```

3. `systemctl enable --now restic-backup.timer`

Restores: `restic -r s3:s3.eu-north-1.amazonaws.com/halvard-nas-restic restore latest --target /mnt/restore`.
""",
    ),
    _pos(
        "ops/ansible/roles/gameserver/files/deploy_ed25519",
        "t19_openssh_key",
        r"""
{V}
""",
    ),
    _neg(
        "ops/ansible/roles/gameserver/files/deploy_ed25519.pub",
        "t19_ssh_pub",
        r"""
{V}
""",
    ),
    _neg(
        "ops/ansible/group_vars/gameservers/vault.yml",
        "t19_ansible_vault",
        r"""
{V}
""",
    ),
    _neg(
        "ops/ansible/group_vars/gameservers/vars.yml",
        "t19_tmpl_ref",
        r"""
---
ark_server_name: "Halvard Makers ARK"
ark_admin_password: "{{ vault_ark_admin_password }}"
ark_server_password: "{{ vault_ark_server_password }}"
mc_rcon_password: "{V}"
valheim_world: Bramblemark
valheim_password: "{{ vault_valheim_password }}"
cs2_rcon_password: "{{ vault_cs2_rcon_password }}"
""",
    ),
    _pos(
        "iot/aws-iot/certs/gh-node-01.private.key",
        "t19_rsa_key",
        r"""
{V}
""",
    ),
    _neg(
        "iot/aws-iot/certs/gh-node-01.cert.pem",
        "t19_cert",
        r"""
{V}
""",
    ),
    _pos(
        "firmware/greenhouse-node/include/aws_certs.h",
        "t19_ec_key",
        r"""
#pragma once
// AWS IoT Core device credentials for gh-node-01 (thing: halvard-greenhouse-01)
static const char AWS_IOT_ENDPOINT[] = "a1b2c3d4e5f6g7-ats.iot.eu-north-1.amazonaws.com";

static const char AWS_CERT_PRIVATE[] PROGMEM = R"KEY(
{V}
)KEY";
""",
    ),
    _neg(
        "firmware/greenhouse-node/include/aws_root_ca.h",
        "t19_cert",
        r"""
#pragma once
// Amazon Root CA 1 (public), from https://www.amazontrust.com/repository/AmazonRootCA1.pem
static const char AWS_CERT_CA[] PROGMEM = R"EOF(
{V}
)EOF";
""",
    ),
    _pos(
        "ops/helm/kart-api/values-prod.yaml",
        "t19_pkcs8_key",
        r"""
replicaCount: 2
image:
  repository: registry.halvardmakers.net/kart-api
  tag: "1.8.2"
ingress:
  enabled: true
  host: kart-api.halvardmakers.net
jwt:
  issuer: kart-api
  signingKey: |
    {IV}
resources:
  limits:
    memory: 256Mi
""",
    ),
    _neg(
        "ops/helm/kart-api/values.yaml",
        "t19_public_key",
        r"""
replicaCount: 1
image:
  repository: registry.halvardmakers.net/kart-api
  tag: "1.8.2"
jwt:
  issuer: kart-api
  # Public half only: the game client verifies leaderboard tokens with it.
  verifyKey: |
    {IV}
  signingKeySecret: kart-api-jwt
""",
    ),
    _pos(
        "apps/halvard-garden-android/firebase-adminsdk.json",
        "t19_gcp_sa_key",
        r"""
{
  "type": "service_account",
  "project_id": "halvard-garden",
  "private_key_id": "4c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d",
  "private_key": "{V}",
  "client_email": "firebase-adminsdk-q7x2m@halvard-garden.iam.gserviceaccount.com",
  "client_id": "104829173645501928374",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "universe_domain": "googleapis.com"
}
""",
    ),
    _neg(
        "desktop/halvard-launcher/src/main/oauth.json",
        "t19_google_client_id",
        r"""
{
  "installed": {
    "client_id": "{V}",
    "project_id": "halvard-launcher",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "redirect_uris": ["http://127.0.0.1"]
  }
}
""",
    ),
    _pos(
        "desktop/BackupTool/BackupTool/App.config",
        "t19_azure_storage_key",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="StorageConnection" value="DefaultEndpointsProtocol=https;AccountName=halvardbackup;AccountKey={V};EndpointSuffix=core.windows.net" />
    <add key="Container" value="kasse-backup" />
    <add key="KeepDays" value="30" />
  </appSettings>
  <startup>
    <supportedRuntime version="v4.0" sku=".NETFramework,Version=v4.7.2" />
  </startup>
</configuration>
""",
    ),
    _pos(
        "legacy/intranet/NuGet.Config",
        "t19_azdo_pat",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="halvard-legacy" value="https://pkgs.dev.azure.com/halvard/_packaging/legacy/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <halvard-legacy>
      <add key="Username" value="build" />
      <add key="ClearTextPassword" value="{V}" />
    </halvard-legacy>
  </packageSourceCredentials>
</configuration>
""",
    ),
    _neg(
        "legacy/fakturaweb/NuGet.Config",
        "t19_dotnet_ref",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="halvard-legacy" value="https://pkgs.dev.azure.com/halvard/_packaging/legacy/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <halvard-legacy>
      <add key="Username" value="build" />
      <add key="ClearTextPassword" value="{V}" />
    </halvard-legacy>
  </packageSourceCredentials>
</configuration>
""",
    ),
    _pos(
        "desktop/halvard-launcher/.npmrc",
        "t19_npm",
        r"""
@halvard-makers:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
save-exact=true
""",
    ),
    _pos(
        "ops/scripts/mirror_gitlab.sh",
        "t19_gitlab",
        r"""
#!/usr/bin/env bash
# Mirrors the old self-hosted GitLab projects to gitlab.com before the box is switched off.
set -euo pipefail
TOKEN="{V}"
for p in ordreweb kundeportal lagerweb timeliste; do
  git clone --mirror "https://oauth2:${TOKEN}@gitlab.halvard.local/legacy/${p}.git" "/tmp/${p}.git"
  git -C "/tmp/${p}.git" push --mirror "https://oauth2:${TOKEN}@gitlab.com/halvard-works/legacy/${p}.git"
done
""",
    ),
    _pos(
        "ops/scripts/cf_ddns.sh",
        "t19_cloudflare",
        r"""
#!/bin/sh
# Updates play.halvardmakers.net when the home IP changes (cron, every 5 min)
ZONE_ID="0b8f2e1c7d6a5b4c3d2e1f0a9b8c7d6e"
RECORD_ID="a9c8b7d6e5f4a3b2c1d0e9f8a7b6c5d4"
CF_API_TOKEN="{V}"
IP=$(curl -s https://api.ipify.org)

curl -s -X PATCH "https://api.cloudflare.com/client/v4/zones/$ZONE_ID/dns_records/$RECORD_ID" \
  -H "Authorization: Bearer $CF_API_TOKEN" \
  -H "Content-Type: application/json" \
  --data "{\"content\":\"$IP\"}"
""",
    ),
    _pos(
        "legacy/batch/nexus_upload.sh",
        "t19_basic_b64",
        r"""
#!/bin/sh
# Uploads the nightly WAR builds to the old Nexus 2 (no token support there).
for war in build/*.war; do
  curl -sf -H "Authorization: Basic {V}" \
       --upload-file "$war" \
       "http://nexus.halvard.local:8081/nexus/content/repositories/releases/no/halvard/$(basename "$war")"
done
""",
    ),
    _pos(
        "legacy/perl/scripts/slack_alert.pl",
        "t19_slack_bot",
        r"""
#!/usr/bin/perl
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;

my $token = '{V}';
my $text  = join ' ', @ARGV;

my $res = HTTP::Tiny->new->post(
    'https://slack.com/api/chat.postMessage',
    {
        headers => { 'Authorization' => "Bearer $token", 'Content-Type' => 'application/json; charset=utf-8' },
        content => encode_json({ channel => '#legacy-alerts', text => $text }),
    }
);
die "slack: $res->{status}\n" unless $res->{success};
""",
    ),
    _pos(
        "legacy/asp/include/sms.asp",
        "t19_twilio_token",
        r"""
<%
' Sends SMS reminders for the member meetings through Twilio
Const TWILIO_SID = "AC5f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c"
Const TWILIO_TOKEN = "{V}"

Function SendSms(toNumber, body)
    Dim http
    Set http = Server.CreateObject("MSXML2.ServerXMLHTTP.6.0")
    http.Open "POST", "https://api.twilio.com/2010-04-01/Accounts/" & TWILIO_SID & "/Messages.json", False, TWILIO_SID, TWILIO_TOKEN
    http.setRequestHeader "Content-Type", "application/x-www-form-urlencoded"
    http.Send "To=" & Server.URLEncode(toNumber) & "&From=%2B4759440000&Body=" & Server.URLEncode(body)
    SendSms = http.Status
End Function
%>
""",
    ),
    _pos(
        "desktop/halvard-launcher/src/main/geo.js",
        "t19_google_api",
        r"""
// Resolves a server's city for the server list (Geocoding API, server-side key).
const https = require('https');

const GEOCODING_KEY = '{V}';

function cityFor(lat, lng) {
  const url = `https://maps.googleapis.com/maps/api/geocode/json?latlng=${lat},${lng}&result_type=locality&key=${GEOCODING_KEY}`;
  return new Promise((resolve, reject) => {
    https.get(url, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(JSON.parse(body).results[0]?.formatted_address));
    }).on('error', reject);
  });
}

module.exports = { cityFor };
""",
    ),
    _pos(
        "ops/filezilla/sitemanager.xml",
        "t19_b64_pw",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<FileZilla3 version="3.66.4" platform="windows">
    <Servers>
        <Server>
            <Host>ftp.makers-shop.no</Host>
            <Port>21</Port>
            <Protocol>0</Protocol>
            <Type>0</Type>
            <User>makersshop</User>
            <Pass encoding="base64">{V}</Pass>
            <Logontype>1</Logontype>
            <Name>Makers shop (prod)</Name>
        </Server>
        <Server>
            <Host>fastdl.halvardmakers.net</Host>
            <Port>22</Port>
            <Protocol>1</Protocol>
            <User>fastdl</User>
            <Pass encoding="base64">{V2}</Pass>
            <Logontype>1</Logontype>
            <Name>GMod FastDL</Name>
        </Server>
    </Servers>
</FileZilla3>
""",
    ),
    _pos(
        "notebooks/discord-weekly-summary.ipynb",
        "t19_openai",
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Weekly summary of #general for the newsletter"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "from openai import OpenAI\n",
    "import pandas as pd\n",
    "\n",
    "client = OpenAI(api_key=\"{V}\")\n",
    "msgs = pd.read_json('exports/general-2024-w10.json')\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _neg(
        "notebooks/energy-usage.ipynb",
        "t19_nb_ref",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os\n",
    "from influxdb import InfluxDBClient\n",
    "\n",
    "client = InfluxDBClient(host='192.168.40.12', port=8086, username='hass',\n",
    "                        password={V}, database='homeassistant')\n",
    "rows = client.query('SELECT mean(value) FROM kWh WHERE time > now() - 30d GROUP BY time(1d)')\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _pos(
        "docs/wiki/Serverzugang.md",
        "t19_oracle_pw",
        r"""
# Serverzugang Altsysteme (Stand: Januar 2024)

Diese Seite ist nur für das Betriebsteam sichtbar. Bitte nicht in Tickets kopieren.

| System | Host | Benutzer | Passwort |
|---|---|---|---|
| WebLogic Admin | wls-admin.halvard.local:7001 | weblogic | `{V}` |
| Oracle ORDPRD | ora-prod01.halvard.local | SYSTEM | `{V2}` |
| DB2 LAGER | db2lager.halvard.local | lagerdba | siehe KeePass |

Nach jedem Personalwechsel die Passwörter ändern und diese Tabelle aktualisieren.
Die Zugänge für die Testumgebung stehen auf der Seite „Testumgebung“.
""",
    ),
    _neg(
        "docs/wiki/Testumgebung.md",
        "t19_redacted",
        r"""
# Testumgebung

| System | Host | Benutzer | Passwort |
|---|---|---|---|
| WebLogic Admin | wls-test.halvard.local:7001 | weblogic | {V} |
| Oracle ORDTST | ora-test01.halvard.local | SYSTEM | {V2} |

Die Passwörter liegen im KeePass-Tresor „Altsysteme/Test“. Diese Seite enthält absichtlich
keine Passwörter mehr (seit dem Audit im Herbst 2023).
""",
    ),
    _pos(
        "docs/es/configuracion-mqtt.md",
        "t19_pw",
        r"""
# Configuración del broker MQTT del taller

El broker corre en `192.168.40.10:1883`. Para conectar un dispositivo nuevo:

1. Crea el usuario en el broker: `mosquitto_passwd -b /mosquitto/passwd sensor_nuevo <contraseña>`.
2. Usa estas credenciales de la cuenta compartida mientras tanto:
   - usuario: `taller`
   - contraseña: `{V}`
3. Prueba la conexión:

```bash
mosquitto_sub -h 192.168.40.10 -u taller -P '{V}' -t 'taller/#' -v
```

Si ves los mensajes de los sensores, ya está.
""",
    ),
    _neg(
        "docs/es/configuracion-mqtt-ejemplos.md",
        "t19_doc_url",
        r"""
# Ejemplos de conexión (documentación)

Los ejemplos usan dominios reservados para documentación; no son servidores reales.

```text
{V}
```

Sustituye el host, el usuario y la contraseña por los tuyos. Nunca subas tus credenciales
reales al repositorio: usa `!secret` en ESPHome y Home Assistant.
""",
    ),
    _pos(
        "docs/pt/servidor-minecraft.md",
        "t19_rcon_pw",
        r"""
# Servidor Minecraft — guia para moderadores

O servidor de sobrevivência fica em `play.halvardmakers.net`. Para comandos remotos:

```bash
mcrcon -H play.halvardmakers.net -P 25575 -p '{V}' "whitelist add NovoJogador"
```

A senha do RCON muda quando alguém sai da equipe de moderação. Última troca: março de 2024.
Não partilhe esta página fora do canal #staff.
""",
    ),
    _neg(
        "docs/fr/bot-discord.md",
        "t19_example_webhook",
        r"""
# Relais Discord — documentation

Le relais publie les résultats de partie dans un salon via un webhook. Dans la configuration,
mettez l'URL du webhook (Discord, ou Slack pour le canal des admins) ; le format est :

```
{V}
```

L'URL ci-dessus est un exemple de la documentation, elle ne fonctionne pas. Le vrai webhook
est dans la variable `DISCORD_WEBHOOK_URL` du serveur.
""",
    ),
    _pos(
        "docs/chat/telegram-export-warsztat.html",
        "t19_wifi_psk",
        r"""
<div class="message default clearfix" id="message8812">
  <div class="body">
    <div class="pull_right date details" title="14.02.2024 18:03:11">18:03</div>
    <div class="from_name">Marek</div>
    <div class="text">Ktoś zna hasło do wifi w warsztacie? Nowy router.</div>
  </div>
</div>
<div class="message default clearfix joined" id="message8813">
  <div class="body">
    <div class="pull_right date details" title="14.02.2024 18:05:40">18:05</div>
    <div class="from_name">Halvard</div>
    <div class="text">sieć halvard-workshop, hasło: {V}</div>
  </div>
</div>
""",
    ),
    _neg(
        "docs/chat/telegram-export-warsztat-2.html",
        "t19_redacted",
        r"""
<div class="message default clearfix" id="message9020">
  <div class="body">
    <div class="pull_right date details" title="02.03.2024 10:11:09">10:11</div>
    <div class="from_name">Marek</div>
    <div class="text">Jakie jest hasło do panelu Grafany?</div>
  </div>
</div>
<div class="message default clearfix joined" id="message9021">
  <div class="body">
    <div class="pull_right date details" title="02.03.2024 10:14:52">10:14</div>
    <div class="from_name">Halvard</div>
    <div class="text">wysłałem prywatnie, tutaj tylko: {V} (usunięte z eksportu)</div>
  </div>
</div>
""",
    ),
    _neg(
        "docs/CHANGELOG.md",
        "t19_git_sha",
        r"""
# Changelog

## 2.3.1 — 2024-03-02
- Launcher: fix auto-update on Windows when the install path has spaces ({V})
- Launcher: server list shows the city again ({V2})

## 2.3.0 — 2024-02-11
- New map view for the server list
- Drop Windows 7 support
""",
    ),
    _neg(
        "docs/ssh-hosts.md",
        "t19_ssh_fpr",
        r"""
# Host key fingerprints

Check these before you accept a host key for the first time.

| Host | Key type | Fingerprint |
|---|---|---|
| game01.halvardmakers.net | ED25519 | `{V}` |
| nas.halvard.local | ED25519 | `{V2}` |
| openwrt.lan | ED25519 | `{V3}` |
""",
    ),
    _neg(
        "docs/security/password-policy.md",
        "t19_i18n",
        r"""
# Password policy (legacy systems)

- Minimum length 12, no dictionary words, rotated when staff leave.
- Shared accounts are in KeePass, never in wikis, tickets or chat.
- Error strings shown to users must not reveal whether the user exists:

| Locale | Message |
|---|---|
| default | {V} |
| fallback | {V2} |
""",
    ),
    _pos(
        "ops/docker/legacy-ordreweb/Dockerfile",
        "t19_oracle_pw",
        r"""
FROM tomcat:8.5-jdk8
LABEL maintainer="drift@halvard.no"

ENV JAVA_OPTS="-Xmx1g -Djava.security.egd=file:/dev/./urandom"
ENV ORDREWEB_JDBC_URL=jdbc:oracle:thin:@ora-prod01.halvard.local:1521:ORDPRD
ENV ORDREWEB_JDBC_USER=ORDREWEB
ENV ORDREWEB_JDBC_PASSWORD={V}

COPY build/ordreweb.war /usr/local/tomcat/webapps/ordreweb.war
COPY conf/ordreweb.xml /usr/local/tomcat/conf/Catalina/localhost/ordreweb.xml
EXPOSE 8080
CMD ["catalina.sh", "run"]
""",
    ),
    _neg(
        "ops/docker/legacy-kundeportal/Dockerfile",
        "t19_secret_file",
        r"""
FROM quay.io/wildfly/wildfly:26.1.3.Final
ARG DB_PASSWORD
# The password is only used at build time by the CLI script and never stored in a layer.
COPY configure-ds.cli /tmp/
RUN /opt/jboss/wildfly/bin/jboss-cli.sh --file=/tmp/configure-ds.cli \
      --properties=<(echo "db.password=$DB_PASSWORD") && rm /tmp/configure-ds.cli
ENV KUNDE_DB_PASSWORD_FILE={V}
COPY target/kundeportal.war /opt/jboss/wildfly/standalone/deployments/
""",
    ),
]

# ---------------------------------------------------------------------- more look-alikes
_MORE: list[evalset.Template] = [
    _neg(
        "firmware/energy-meter/.github/workflows/build.yml",
        "t19_gha_wifi_ref",
        r"""
name: firmware
on: [push, pull_request]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install platformio==6.1.14
      - run: pio run -e esp32dev_ci
        env:
          WIFI_SSID: halvard-iot
          WIFI_PASS: {V}
          MQTT_PASS: ${{ secrets.MQTT_PASS }}
      - uses: actions/upload-artifact@v4
        with:
          name: firmware
          path: .pio/build/esp32dev_ci/firmware.bin
""",
    ),
    _neg(
        "cms/halvard-blog/ops/core-checksums.json",
        "t19_md5_hex",
        r"""
{
  "checksums": {
    "wp-config-sample.php": "{V}",
    "wp-login.php": "{V2}",
    "wp-includes/pluggable.php": "{V3}",
    "wp-admin/includes/class-wp-upgrader.php": "{V4}"
  },
  "version": "6.4.3",
  "locale": "nb_NO"
}
""",
    ),
    _neg(
        "cms/verksted-butikk/support/env.php.redacted",
        "t19_redacted",
        r"""
<?php
// Attached to the Adobe support ticket. Secrets removed before sending.
return [
    'backend' => ['frontName' => 'admin_h4lv'],
    'crypt' => [
        'key' => '{V}'
    ],
    'db' => [
        'connection' => [
            'default' => [
                'host' => 'mysql03.halvard.local',
                'dbname' => 'magento',
                'username' => 'magento',
                'password' => '{V2}',
            ]
        ]
    ],
    'MAGE_MODE' => 'production',
];
""",
    ),
    _neg(
        "unity/HalvardKart/Assets/Scenes/Garage.unity",
        "t19_unity_guid",
        r"""
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!1 &204518331
GameObject:
  m_ObjectHideFlags: 0
  serializedVersion: 6
  m_Component:
  - component: {fileID: 204518333}
  - component: {fileID: 204518332}
  m_Layer: 0
  m_Name: LobbyClient
  m_IsActive: 1
--- !u!114 &204518332
MonoBehaviour:
  m_ObjectHideFlags: 0
  m_GameObject: {fileID: 204518331}
  m_Enabled: 1
  m_Script: {fileID: 11500000, guid: {V}, type: 3}
  serverUrl: wss://kart-lobby.halvardmakers.net
  playerPrefab: {fileID: 7410238844120934, guid: {V2}, type: 3}
""",
    ),
    _neg(
        "gameservers/minecraft/survival/whitelist.json",
        "t19_uuid",
        r"""
[
  {"uuid": "{V}", "name": "halvard_h"},
  {"uuid": "{V2}", "name": "kestrelKid"},
  {"uuid": "{V3}", "name": "MarekBuilds"},
  {"uuid": "{V4}", "name": "otterlyfine"}
]
""",
    ),
    _neg(
        "legacy/perl/t/02-db.t",
        "t19_fake_test",
        r"""
use strict;
use warnings;
use Test::More;
use Test::MockModule;

use Halvard::DB;

my $dbi = Test::MockModule->new('DBI');
my @seen;
$dbi->redefine(connect => sub { shift; @seen = @_; return bless {}, 'DBI::db' });

local $ENV{DB_PASS} = '{V}';
my $dbh = Halvard::DB::connect_medlem();
ok($dbh, 'connect returns a handle');
is($seen[2], '{V}', 'password comes from the environment');

done_testing;
""",
    ),
    _neg(
        "desktop/delphi/Kasse/Kasse.dproj",
        "t19_guid_upper",
        r"""
<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
    <PropertyGroup>
        <ProjectGuid>{V}</ProjectGuid>
        <ProjectVersion>19.5</ProjectVersion>
        <FrameworkType>VCL</FrameworkType>
        <MainSource>Kasse.dpr</MainSource>
        <Base>True</Base>
        <Config Condition="'$(Config)'==''">Release</Config>
        <Platform Condition="'$(Platform)'==''">Win32</Platform>
        <TargetedPlatforms>1</TargetedPlatforms>
        <AppType>Application</AppType>
    </PropertyGroup>
    <ItemGroup>
        <DelphiCompile Include="$(MainSource)">
            <MainSource>MainSource</MainSource>
        </DelphiCompile>
        <DCCReference Include="dmMain.pas">
            <Form>dmMain</Form>
            <DesignClass>TDataModule</DesignClass>
        </DCCReference>
    </ItemGroup>
</Project>
""",
    ),
    _neg(
        "legacy/coldfusion/lib/PasswordService.cfc",
        "t19_bcrypt",
        r"""
component output="false" {
    // Hash of the shared "styret" login from before the SSO migration; kept so the old
    // bookmark page can still check it. Verified with BCrypt via the Java loader.
    variables.styretHash = "{V}";

    public boolean function check(required string candidate) {
        var bcrypt = createObject("java", "org.mindrot.jbcrypt.BCrypt");
        return bcrypt.checkpw(arguments.candidate, variables.styretHash);
    }
}
""",
    ),
]

TEMPLATES: list[evalset.Template] = [*_IOT, *_GAMES, *_DESKTOP, *_ENTERPRISE, *_CMS, *_OPS, *_MORE]
