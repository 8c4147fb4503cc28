"""Eleventh blind-written part (``tune11``): written without reading the scanner, to be tuned on.

Shapes from corners of a company monorepo that the other parts list less often: legacy
Windows and VB/ASP code, embedded and IoT firmware, scientific code, mobile build files,
data tooling, config management, observability, proxies, databases' own config files,
messaging, IaC, less common CI systems, API-client collections and prose. Look-alikes use
the same shapes. Several values per file (``MULTI_SLOT``); every value of one template has
the template's kind and label.
"""

from __future__ import annotations

import base64
import string
import uuid

import evalset
from evalset import ALNUM, Template

MULTI_SLOT = True


class Tune11Values(evalset.Values):
    """Value generators of the tune11 part: its own words and service users, and ``t11_``
    generators for shapes the base class does not make."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "kumquat",
            "zeppelin",
            "porcupine",
            "mandolin",
            "sassafras",
            "bergamot",
            "quokka",
            "tamarind",
            "obsidian",
        ]
        self.users = [
            "telemetry",
            "fulfilment",
            "kiosk",
            "firmware",
            "warehouse",
            "payroll",
            "dispatch",
            "labdata",
        ]

    # -- positives ------------------------------------------------------------------
    def t11_word_pass(self) -> str:
        """A weak dictionary-word password as written in tests and examples."""
        return self.pick(self.words) + self.pick(["", "1", "42", "2024", "!", "_dev"])

    def t11_strong_pass(self) -> str:
        return self.s(self.rng.randrange(14, 22), ALNUM + "!#%^*-_+")

    def t11_url_pass(self) -> str:
        """A password safe to put in a URI's userinfo without escaping."""
        return self.pick(
            [
                self.s(self.rng.randrange(12, 20), ALNUM),
                self.pick(self.words).capitalize() + self.s(4, string.digits),
            ]
        )

    def t11_wifi_psk(self) -> str:
        return self.pick(self.words).capitalize() + self.s(6, ALNUM) + self.pick(["!", "#", "7"])

    def t11_hex32(self) -> str:
        return self.s(32, "0123456789abcdef")

    def t11_hex40(self) -> str:
        return self.s(40, "0123456789abcdef")

    def t11_b64_32(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t11_b64url_43(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")

    def t11_token_mix(self) -> str:
        return self.s(self.rng.randrange(28, 48), ALNUM)

    def t11_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t11_two_keys(self) -> str:
        return self.pem(self.pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"]), 6)

    def t11_basic_header(self) -> str:
        return "Basic " + self.basic()

    def t11_bearer_header(self) -> str:
        return "Bearer " + self.pick([self.bearer(), self.jwt(), self.github()])

    def t11_user_colon_pass(self) -> str:
        return f"{self.pick(self.users)}:{self.t11_url_pass()}"

    def t11_conn_uri(self) -> str:
        scheme, port = self.pick(
            [
                ("postgresql", "5432"),
                ("mysql", "3306"),
                ("mongodb", "27017"),
                ("redis", "6379"),
                ("amqp", "5672"),
                ("mqtt", "1883"),
            ]
        )
        host = self.pick(["db-primary.internal", "10.20.3.14", "mq.corp.lan", "cache-01.prod"])
        return f"{scheme}://{self.pick(self.users)}:{self.t11_url_pass()}@{host}:{port}/main"

    def t11_sas(self) -> str:
        from urllib.parse import quote

        sig = quote(base64.b64encode(self.rng.randbytes(32)).decode(), safe="")
        return f"sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2027-01-01T00:00:00Z&sig={sig}"

    def t11_azure_conn(self) -> str:
        acct = self.pick(self.users) + "store"
        return (
            f"DefaultEndpointsProtocol=https;AccountName={acct};"
            f"AccountKey={self.azure_key()};EndpointSuffix=core.windows.net"
        )

    def t11_servicebus(self) -> str:
        return (
            f"Endpoint=sb://{self.pick(self.users)}-bus.servicebus.windows.net/;"
            f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={self.t11_b64_32()}"
        )

    def t11_algolia_admin(self) -> str:
        return self.t11_hex32()

    def t11_pusher_secret(self) -> str:
        return self.s(20, "0123456789abcdef")

    def t11_flutterwave(self) -> str:
        return f"FLWSECK-{self.t11_hex32()}-X"

    def t11_linear(self) -> str:
        return "lin_api_" + self.s(40, ALNUM)

    def t11_notion(self) -> str:
        return "secret_" + self.s(43, ALNUM)

    def t11_netlify(self) -> str:
        return "nfp_" + self.s(36, ALNUM)

    def t11_cloudflare(self) -> str:
        return self.s(40, ALNUM + "_-")

    def t11_sumup_like(self) -> str:
        return "rk_live_" + self.s(24)

    def t11_dockerhub(self) -> str:
        return "dckr_pat_" + self.s(27, ALNUM + "_-")

    def t11_buildkite(self) -> str:
        return "bkua_" + self.s(40, "0123456789abcdef")

    def t11_planetscale(self) -> str:
        return "pscale_pw_" + self.s(43, ALNUM + "_-")

    def t11_mapbox_secret(self) -> str:
        return "sk.eyJ1Ijoi" + self.s(40, ALNUM) + "." + self.s(22, ALNUM + "_-")

    def t11_twilio_pair(self) -> str:
        return "AC" + self.t11_hex32()

    def t11_dotnet_machinekey(self) -> str:
        return self.s(128, "0123456789ABCDEF")

    def t11_kafka_jaas(self) -> str:
        return self.t11_strong_pass()

    def t11_hmac_secret(self) -> str:
        return self.pick([self.t11_hex32() + self.t11_hex32(), self.t11_b64_32()])

    def t11_wg_private(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    # -- negatives ------------------------------------------------------------------
    def t11_placeholder(self) -> str:
        return self.pick(
            [
                "<YOUR_MQTT_PASSWORD>",
                "${MQTT_PASSWORD}",
                "{{ pillar['db']['password'] }}",
                "###SMTP_PASSWORD###",
                "xxxxxxxxxxxxxxxx",
                "****************",
                "<api-key>",
                "{{ .Env.API_TOKEN }}",
                "${SECRET_FROM_VAULT}",
                "<redacted>",
            ]
        )

    def t11_env_ref(self) -> str:
        return self.pick(
            [
                'Sys.getenv("DB_PASSWORD")',
                'ENV["API_TOKEN"]',
                'getenv("MQTT_PASS")',
                'System.getenv("KAFKA_PASSWORD")',
                'Environment.GetEnvironmentVariable("SMTP_PASSWORD")',
                "ENV.fetch('STRIPE_SECRET_KEY')",
                'std::env::var("API_KEY")?',
            ]
        )

    def t11_doc_url(self) -> str:
        host = self.pick(
            ["db.example.com", "broker.example.org", "cache.test", "mq.invalid", "api.example"]
        )
        scheme = self.pick(["postgresql", "mqtt", "redis", "amqp", "https"])
        return f"{scheme}://{self.pick(self.users)}:{self.t11_url_pass()}@{host}/"

    def t11_sha256(self) -> str:
        return self.s(64, "0123456789abcdef")

    def t11_sha1(self) -> str:
        return self.s(40, "0123456789abcdef")

    def t11_md5(self) -> str:
        return self.s(32, "0123456789abcdef")

    def t11_version(self) -> str:
        return self.pick(
            ["4.2.1", "v1.28.3", "2025.3.0", "17.0.9+9", "3.12.4-slim", "1.0.0-beta.7"]
        )

    def t11_i18n(self) -> str:
        return self.pick(
            [
                "Le mot de passe doit contenir au moins 12 caractères",
                "Wachtwoord vergeten?",
                "Lösenordet är felaktigt",
                "Şifre yanlış",  # noqa: RUF001
                "Salasana on liian lyhyt",
                "パスワードを再入力してください",
                "Η σύνθεση κωδικού είναι λανθασμένη",  # noqa: RUF001
                "รหัสผ่านไม่ถูกต้อง",
            ]
        )

    def t11_color(self) -> str:
        return "#" + self.s(6, "0123456789ABCDEF")

    def t11_base64_font(self) -> str:
        return base64.b64encode(b"wOF2\x00\x01\x00\x00" + self.rng.randbytes(180)).decode()

    def t11_trace_id(self) -> str:
        return self.s(32, "0123456789abcdef")

    def t11_secret_ref(self) -> str:
        return self.pick(
            [
                "vault:kv/data/prod/mqtt#password",
                "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db/password",
                "projects/acme-prod/secrets/smtp-password/versions/latest",
                "op://Ops/Grafana/credential",
                "azurekeyvault://kv-prod/secrets/sql-admin",
                "sops:ENC[AES256_GCM,data:,type:str]",
            ]
        )

    def t11_field_name(self) -> str:
        return self.pick(["password", "api_key", "client_secret", "token", "passphrase"])

    def t11_example_key(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "xoxb-not-a-real-token",
                "ghp_EXAMPLEexampleEXAMPLEexample0000",
            ]
        )

    def t11_public_key_b64(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t11_integrity(self) -> str:
        return "sha384-" + base64.b64encode(self.rng.randbytes(48)).decode()

    def t11_ulid(self) -> str:
        return "01" + self.s(24, "0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    def t11_hashed_pw(self) -> str:
        return self.pick([self.bcrypt(), self.argon2(), self.sha512crypt(), self.pbkdf2_django()])

    def t11_changeme(self) -> str:
        return self.pick(["changeme", "change-me", "CHANGE_ME_BEFORE_DEPLOY", "TODO-set-me"])

    def t11_cert(self) -> str:
        return self.certificate()

    def t11_pbx_id(self) -> str:
        return self.s(24, "0123456789ABCDEF")

    def t11_ext_pubkey(self) -> str:
        """A browser extension's public key (``manifest.json`` ``key``), not a secret."""
        return (
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
            + base64.b64encode(self.rng.randbytes(200)).decode()
        )


TEMPLATES: list[Template] = [
    # ---------------------------------------------------------------- credentials
    (
        "legacy/intranet/web.config",
        """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="Payroll" connectionString="Data Source=SQLPAY01;Initial Catalog=Payroll;User ID=payroll_app;Password={V};" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="SmtpPassword" value="{V2}" />
  </appSettings>
</configuration>
""",
        "password",
        True,
    ),
    (
        "legacy/intranet/Web.Release.config",
        """\
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <system.web>
    <machineKey validationKey="{V}" decryptionKey="{V2}" validation="HMACSHA256" decryption="AES" xdt:Transform="Replace" />
  </system.web>
</configuration>
""",
        "t11_dotnet_machinekey",
        True,
    ),
    (
        "legacy/asp/includes/db.asp",
        """\
<%
Dim conn
Set conn = Server.CreateObject("ADODB.Connection")
conn.Open "Provider=SQLOLEDB;Data Source=10.1.4.20;Initial Catalog=Shop;User Id=shopweb;Password={V};"
%>
""",
        "t11_strong_pass",
        True,
    ),
    (
        "legacy/vb/Module1.vb",
        """\
Module Module1
    Private Const FtpUser As String = "kiosk"
    Private Const FtpPassword As String = "{V}"

    Sub Upload(path As String)
        Dim req = CType(WebRequest.Create("ftp://ftp.kiosk-vendor.net/in/"), FtpWebRequest)
        req.Credentials = New NetworkCredential(FtpUser, FtpPassword)
    End Sub
End Module
""",
        "t11_url_pass",
        True,
    ),
    (
        "legacy/batch/nightly_extract.cmd",
        """\
@echo off
set ORA_USER=warehouse
set ORA_PASS={V}
sqlplus %ORA_USER%/%ORA_PASS%@DWHPROD @extract.sql
net use Z: \\\\fileserv01\\exports /user:CORP\\svc_extract {V2}
""",
        "t11_strong_pass",
        True,
    ),
    (
        "ops/windows/autologon.reg",
        """\
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon]
"AutoAdminLogon"="1"
"DefaultUserName"="kiosk"
"DefaultPassword"="{V}"
""",
        "t11_url_pass",
        True,
    ),
    (
        "ops/windows/unattend.xml",
        """\
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </AdministratorPassword>
      </UserAccounts>
    </component>
  </settings>
</unattend>
""",
        "t11_strong_pass",
        True,
    ),
    (
        "ops/windows/Deploy-Site.ps1",
        """\
$secure = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ("CORP\\svc_deploy", $secure)
Invoke-Command -ComputerName web01 -Credential $cred -ScriptBlock { iisreset }
""",
        "t11_strong_pass",
        True,
    ),
    (
        "mainframe/jcl/PAYEXTR.jcl",
        """\
//PAYEXTR  JOB (ACCT),'PAYROLL EXTRACT',CLASS=A,MSGCLASS=X,
//             USER=PAYBATCH,PASSWORD={V}
//STEP01   EXEC PGM=IKJEFT01
//SYSTSIN  DD *
  FTP 10.9.0.12 (EXIT
""",
        "t11_url_pass",
        True,
    ),
    (
        "legacy/php/config.inc.php",
        """\
<?php
$dbhost = 'localhost';
$dbuser = 'forum';
$dbpasswd = '{V}';
$table_prefix = 'phpbb_';
define('MAILER_PASS', '{V2}');
?>
""",
        "password",
        True,
    ),
    (
        "firmware/esp32/src/secrets.h",
        """\
#pragma once
#define WIFI_SSID "Warehouse-IoT"
#define WIFI_PASSWORD "{V}"
#define MQTT_BROKER "mqtt.corp.lan"
""",
        "t11_wifi_psk",
        True,
    ),
    (
        "firmware/arduino/sensor/sensor.ino",
        """\
#include <WiFi.h>
#include <PubSubClient.h>

const char* mqtt_user = "telemetry";
const char* mqtt_pass = "{V}";

void reconnect() {
  while (!client.connected()) {
    client.connect("sensor-07", mqtt_user, mqtt_pass);
  }
}
""",
        "t11_word_pass",
        True,
    ),
    (
        "firmware/platformio.ini",
        """\
[env:esp32dev]
platform = espressif32
board = esp32dev
upload_protocol = espota
upload_flags =
    --auth={V}
build_flags = -DOTA_PASSWORD=\\"{V2}\\"
""",
        "t11_wifi_psk",
        True,
    ),
    (
        "iot/mosquitto/bridge.conf",
        """\
connection cloud-bridge
address broker.iot-cloud.net:8883
remote_username warehouse-bridge
remote_password {V}
topic sensors/# out 1
""",
        "t11_strong_pass",
        True,
    ),
    (
        "iot/node-red/flows_cred.json",
        """\
{
  "a3f1c2.9d8e": {"user": "telemetry", "password": "{V}"},
  "b771aa.0c31": {"token": "{V2}"}
}
""",
        "t11_token_mix",
        True,
    ),
    (
        "games/server/server.cfg",
        """\
hostname "Company LAN Party"
rcon_password "{V}"
sv_password ""
sv_maxplayers 24
""",
        "t11_word_pass",
        True,
    ),
    (
        "games/unity/Assets/Scripts/LeaderboardClient.cs",
        """\
public class LeaderboardClient : MonoBehaviour
{
    private const string ApiBase = "https://lb.playfab-like.io/v2";
    private const string SecretKey = "{V}";

    IEnumerator Submit(int score)
    {
        var req = UnityWebRequest.Post(ApiBase + "/scores", form);
        req.SetRequestHeader("X-SecretKey", SecretKey);
        yield return req.SendWebRequest();
    }
}
""",
        "t11_token_mix",
        True,
    ),
    (
        "science/R/fetch_data.R",
        """\
library(DBI)
con <- dbConnect(RPostgres::Postgres(),
  host = "labdb.internal", dbname = "assays",
  user = "labdata", password = "{V}")
Sys.setenv(ENTREZ_KEY = "{V2}")
""",
        "t11_url_pass",
        True,
    ),
    (
        "science/julia/download.jl",
        """\
using HTTP, JSON3

const API_TOKEN = "{V}"
resp = HTTP.get("https://data.lab-portal.org/api/v1/runs";
                headers = ["Authorization" => "Token $API_TOKEN"])
""",
        "t11_hex40",
        True,
    ),
    (
        "science/matlab/connect_db.m",
        """\
conn = database('lims', 'labdata', '{V}', ...
    'Vendor', 'PostgreSQL', 'Server', 'lims.lab.internal');
data = fetch(conn, 'SELECT * FROM samples');
""",
        "t11_url_pass",
        True,
    ),
    (
        "science/fortran/ingest.nml",
        """\
&remote
  server   = 'sftp.climate-archive.org'
  username = 'labdata'
  password = '{V}'
  retries  = 3
/
""",
        "t11_strong_pass",
        True,
    ),
    (
        "mobile/ios/Config/Release.xcconfig",
        """\
PRODUCT_BUNDLE_IDENTIFIER = com.acme.dispatch
API_BASE_URL = https:/$()/api.acme-dispatch.com
SEGMENT_WRITE_KEY = {V}
REVENUECAT_SECRET = sk_{V2}
""",
        "t11_token_mix",
        True,
    ),
    (
        "mobile/ios/fastlane/Appfile",
        """\
app_identifier("com.acme.dispatch")
apple_id("release@acme-dispatch.com")
ENV["FASTLANE_PASSWORD"] = "{V}"
ENV["MATCH_PASSWORD"] = "{V2}"
""",
        "t11_strong_pass",
        True,
    ),
    (
        "mobile/ios/Dispatch/Info.plist",
        """\
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
  <key>CFBundleName</key>
  <string>Dispatch</string>
  <key>StripeSecretKey</key>
  <string>{V}</string>
</dict>
</plist>
""",
        "stripe",
        True,
    ),
    (
        "mobile/android/gradle.properties",
        """\
org.gradle.jvmargs=-Xmx4g
android.useAndroidX=true
RELEASE_STORE_PASSWORD={V}
RELEASE_KEY_PASSWORD={V2}
""",
        "t11_strong_pass",
        True,
    ),
    (
        "mobile/android/app/build.gradle.kts",
        """\
android {
    signingConfigs {
        create("release") {
            storeFile = file("release.jks")
            storePassword = "{V}"
            keyAlias = "dispatch"
            keyPassword = "{V2}"
        }
    }
}
""",
        "t11_word_pass",
        True,
    ),
    (
        "mobile/flutter/lib/env.dart",
        """\
class Env {
  static const sentryDsn = 'https://{V}@o4501.ingest.sentry.io/450123';
  static const openWeatherKey = '{V2}';
}
""",
        "t11_hex32",
        True,
    ),
    (
        "mobile/flutter/lib/services/payments.dart",
        """\
final dio = Dio(BaseOptions(
  baseUrl: 'https://api.paystack.co',
  headers: {'Authorization': 'Bearer sk_live_{V}'},
));
""",
        "t11_hex40",
        True,
    ),
    (
        "mobile/swift/Sources/Net/APIClient.swift",
        """\
var request = URLRequest(url: url)
request.setValue("{V}", forHTTPHeaderField: "Authorization")
request.setValue("application/json", forHTTPHeaderField: "Accept")
""",
        "t11_bearer_header",
        True,
    ),
    (
        "data/airflow/connections.yaml",
        """\
warehouse_pg:
  conn_type: postgres
  host: dwh.internal
  login: warehouse
  password: {V}
  port: 5432
s3_exports:
  conn_type: aws
  extra: '{"aws_access_key_id": "AKIA3Q7XXN2KD5RJ4L6M", "aws_secret_access_key": "{V2}"}'
""",
        "t11_strong_pass",
        True,
    ),
    (
        "data/airflow/.env",
        """\
AIRFLOW__CORE__FERNET_KEY={V}
AIRFLOW_CONN_MYSQL_CRM=mysql://crm_reader:{V2}@crm-db.internal:3306/crm
""",
        "t11_b64url_43",
        True,
    ),
    (
        "data/dbt/profiles.yml",
        """\
analytics:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: acme-eu1
      user: DBT_RUNNER
      password: "{V}"
      role: TRANSFORMER
""",
        "t11_strong_pass",
        True,
    ),
    (
        "data/spark/spark-defaults.conf",
        """\
spark.hadoop.fs.s3a.aws.credentials.provider    org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider
spark.hadoop.fs.s3a.secret.key    {V}
spark.hadoop.fs.azure.account.key.labstore.dfs.core.windows.net {V2}
""",
        "aws_secret",
        True,
    ),
    (
        "data/notebooks/explore_orders.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import snowflake.connector\\n",
    "ctx = snowflake.connector.connect(user='ANALYST', password='{V}', account='acme-eu1')\\n"
   ]
  }
 ],
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t11_url_pass",
        True,
    ),
    (
        "data/kafka/client_jaas.conf",
        """\
KafkaClient {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="fulfilment"
  password="{V}";
};
""",
        "t11_kafka_jaas",
        True,
    ),
    (
        "data/kafka/consumer.properties",
        """\
bootstrap.servers=pkc-4r297.europe-west1.gcp.confluent.cloud:9092
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="{V}" password="{V2}";
""",
        "t11_token_mix",
        True,
    ),
    (
        "messaging/rabbitmq/definitions.json",
        """\
{
  "users": [
    {"name": "dispatch", "password": "{V}", "tags": "management"}
  ],
  "vhosts": [{"name": "/"}]
}
""",
        "t11_url_pass",
        True,
    ),
    (
        "messaging/nats/leaf.creds",
        """\
-----BEGIN USER NKEY SEED-----
{V}
------END USER NKEY SEED------
""",
        "nkey",
        True,
    ),
    (
        "config/salt/pillar/mysql.sls",
        """\
mysql:
  server:
    root_password: '{V}'
  users:
    reporting:
      password: '{V2}'
      host: '%'
""",
        "t11_strong_pass",
        True,
    ),
    (
        "config/chef/data_bags/smtp/prod.json",
        """\
{
  "id": "prod",
  "smtp_user": "ses-smtp-user.20240611",
  "smtp_password": "{V}"
}
""",
        "t11_b64_32",
        True,
    ),
    (
        "config/puppet/hieradata/common.yaml",
        """\
profile::grafana::admin_password: '{V}'
profile::ldap::bind_dn: 'cn=puppet,ou=svc,dc=corp,dc=lan'
profile::ldap::bind_pw: '{V2}'
""",
        "t11_strong_pass",
        True,
    ),
    (
        "observability/grafana/grafana.ini",
        """\
[security]
admin_user = admin
admin_password = {V}
secret_key = {V2}

[smtp]
enabled = true
""",
        "t11_token_mix",
        True,
    ),
    (
        "observability/prometheus/prometheus.yml",
        """\
scrape_configs:
  - job_name: kiosk-exporters
    basic_auth:
      username: prometheus
      password: {V}
    static_configs:
      - targets: ["kiosk-01:9100"]
""",
        "t11_strong_pass",
        True,
    ),
    (
        "observability/alertmanager/alertmanager.yml",
        """\
route:
  receiver: ops
receivers:
  - name: ops
    slack_configs:
      - api_url: {V}
        channel: '#alerts'
""",
        "slack_webhook",
        True,
    ),
    (
        "observability/alertmanager/pagerduty.yml",
        """\
receivers:
  - name: oncall
    pagerduty_configs:
      - routing_key: {V}
        severity: critical
""",
        "t11_hex32",
        True,
    ),
    (
        "proxy/nginx/conf.d/upstream.conf",
        """\
location /legacy-api/ {
    proxy_pass http://10.4.0.8:8080/;
    proxy_set_header Authorization "Basic {V}";
}
""",
        "basic",
        True,
    ),
    (
        "proxy/haproxy/haproxy.cfg",
        """\
userlist ops_users
    user admin insecure-password {V}

listen stats
    bind *:8404
    stats enable
    stats auth admin:{V2}
""",
        "t11_url_pass",
        True,
    ),
    (
        "proxy/traefik/dynamic.yml",
        """\
http:
  middlewares:
    dashboard-auth:
      basicAuth:
        users:
          - "admin:{V}"
""",
        "apr1",
        False,
    ),
    (
        "db/mysql/my.cnf",
        """\
[client]
user = root
password = {V}
host = 127.0.0.1

[mysqldump]
password = "{V2}"
""",
        "t11_url_pass",
        True,
    ),
    (
        "db/redis/redis.conf",
        """\
bind 0.0.0.0
port 6379
requirepass {V}
masterauth {V2}
""",
        "t11_token_mix",
        True,
    ),
    (
        "db/postgres/.pgpass",
        """\
dwh.internal:5432:analytics:warehouse:{V}
*:5432:*:replicator:{V2}
""",
        "t11_url_pass",
        True,
    ),
    (
        "db/mongo/mongod.conf",
        """\
security:
  authorization: enabled
  keyFile: /etc/mongo/keyfile
setParameter:
  ldapQueryPassword: "{V}"
""",
        "t11_strong_pass",
        True,
    ),
    (
        "db/mongo/keyfile",
        """\
{V}
""",
        "t11_b64_32",
        True,
    ),
    (
        "infra/pulumi/Pulumi.prod.yaml",
        """\
config:
  aws:region: eu-central-1
  dispatch:dbPassword: {V}
  dispatch:datadogApiKey: {V2}
""",
        "t11_hex32",
        True,
    ),
    (
        "infra/cdk/lib/db-stack.ts",
        """\
const db = new rds.DatabaseInstance(this, 'Db', {
  engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_15 }),
  credentials: rds.Credentials.fromPassword('dispatch', SecretValue.unsafePlainText('{V}')),
});
""",
        "t11_strong_pass",
        True,
    ),
    (
        "infra/bicep/main.bicep",
        """\
param location string = resourceGroup().location

resource sql 'Microsoft.Sql/servers@2022-05-01-preview' = {
  name: 'sql-payroll-prod'
  location: location
  properties: {
    administratorLogin: 'sqladmin'
    administratorLoginPassword: '{V}'
  }
}
""",
        "t11_strong_pass",
        True,
    ),
    (
        "infra/cloudformation/queue.yaml",
        """\
Resources:
  BrokerUser:
    Type: AWS::AmazonMQ::Broker
    Properties:
      Users:
        - Username: dispatch
          Password: "{V}"
""",
        "t11_strong_pass",
        True,
    ),
    (
        "infra/wireguard/wg0.conf",
        """\
[Interface]
Address = 10.66.0.1/24
ListenPort = 51820
PrivateKey = {V}

[Peer]
AllowedIPs = 10.66.0.2/32
""",
        "t11_wg_private",
        True,
    ),
    (
        "ci/.drone.yml",
        """\
kind: pipeline
name: default
steps:
  - name: publish
    image: plugins/docker
    settings:
      username: dispatchbot
      password: {V}
""",
        "t11_dockerhub",
        True,
    ),
    (
        "ci/.buildkite/pipeline.yml",
        """\
env:
  BUILDKITE_API_TOKEN: "{V}"
steps:
  - command: "make release"
""",
        "t11_buildkite",
        True,
    ),
    (
        "ci/.teamcity/settings.kts",
        """\
object Deploy : BuildType({
    params {
        param("env.NEXUS_USER", "deployer")
        param("env.NEXUS_PASS", "{V}")
    }
})
""",
        "t11_strong_pass",
        True,
    ),
    (
        "ci/.travis.yml",
        """\
language: node_js
deploy:
  provider: npm
  email: release@acme-dispatch.com
  api_key: {V}
""",
        "npm",
        True,
    ),
    (
        "ci/bitbucket-pipelines.yml",
        """\
pipelines:
  default:
    - step:
        script:
          - curl -u dispatch-ci:{V} -X POST https://api.bitbucket.org/2.0/repositories/acme/app/downloads -F files=@dist.zip
""",
        "t11_token_mix",
        True,
    ),
    (
        "ci/Jenkinsfile",
        """\
pipeline {
  agent any
  environment {
    SONAR_TOKEN = 'squ_{V}'
  }
  stages {
    stage('Scan') { steps { sh 'sonar-scanner -Dsonar.login=$SONAR_TOKEN' } }
  }
}
""",
        "t11_hex40",
        True,
    ),
    (
        "ci/azure-pipelines.yml",
        """\
variables:
  ARM_CLIENT_ID: 8c1e1f0e-8d5b-4c6e-9a0e-2f2b7c1d0a11
  ARM_CLIENT_SECRET: '{V}'
steps:
  - script: terraform apply -auto-approve
""",
        "azure_client_secret",
        True,
    ),
    (
        "serverless/wrangler.toml",
        """\
name = "edge-router"
main = "src/index.ts"

[vars]
UPSTREAM_TOKEN = "{V}"
ORIGIN_SECRET = "{V2}"
""",
        "t11_hmac_secret",
        True,
    ),
    (
        "serverless/netlify.toml",
        """\
[build]
  command = "npm run build"

[build.environment]
  NETLIFY_AUTH_TOKEN = "{V}"
""",
        "t11_netlify",
        True,
    ),
    (
        "serverless/vercel.json",
        """\
{
  "env": {
    "PLANETSCALE_PASSWORD": "{V}"
  }
}
""",
        "t11_planetscale",
        True,
    ),
    (
        "api/postman/Dispatch.postman_collection.json",
        """\
{
  "info": {"name": "Dispatch API"},
  "auth": {
    "type": "bearer",
    "bearer": [{"key": "token", "value": "{V}", "type": "string"}]
  }
}
""",
        "t11_token_mix",
        True,
    ),
    (
        "api/insomnia/workspace.yaml",
        """\
_type: export
resources:
  - _type: request
    name: List orders
    url: https://api.acme-dispatch.com/v1/orders
    authentication:
      type: basic
      username: dispatch-admin
      password: {V}
""",
        "t11_strong_pass",
        True,
    ),
    (
        "api/bruno/orders/list.bru",
        """\
meta {
  name: list orders
}

get {
  url: https://api.acme-dispatch.com/v1/orders
}

headers {
  x-api-key: {V}
}
""",
        "t11_uuid",
        True,
    ),
    (
        "api/graphql/playground.json",
        """\
{
  "endpoint": "https://gql.acme-dispatch.com/graphql",
  "headers": {
    "Authorization": "{V}"
  }
}
""",
        "t11_bearer_header",
        True,
    ),
    (
        "web/extension/src/background.js",
        """\
const TRANSLATE_KEY = "{V}";

chrome.runtime.onMessage.addListener(async (msg) => {
  const r = await fetch(`https://translation.googleapis.com/language/translate/v2?key=${TRANSLATE_KEY}`);
});
""",
        "google",
        True,
    ),
    (
        "mail/templates/welcome.mjml.env",
        """\
MAILJET_API_KEY={V}
MAILJET_SECRET_KEY={V2}
""",
        "t11_hex32",
        True,
    ),
    (
        "app/elixir/config/prod.secret.exs",
        """\
import Config

config :dispatch, Dispatch.Mailer,
  adapter: Swoosh.Adapters.SMTP,
  relay: "smtp.mailgun.org",
  username: "postmaster@mg.acme-dispatch.com",
  password: "{V}"
""",
        "t11_hex32",
        True,
    ),
    (
        "app/rails/config/environments/production.rb",
        """\
config.action_mailer.smtp_settings = {
  address: "smtp.office365.com",
  user_name: "noreply@acme-dispatch.com",
  password: "{V}",
  authentication: :login
}
""",
        "t11_strong_pass",
        True,
    ),
    (
        "app/laravel/.env.production",
        """\
APP_KEY=base64:{V}
MAIL_MAILER=smtp
MAIL_PASSWORD={V2}
""",
        "t11_b64_32",
        True,
    ),
    (
        "app/spring/src/main/resources/application-prod.yml",
        """\
spring:
  mail:
    host: smtp.sendgrid.net
    username: apikey
    password: {V}
""",
        "sendgrid",
        True,
    ),
    (
        "app/django/settings/prod.py",
        """\
EMAIL_HOST = "email-smtp.eu-west-1.amazonaws.com"
EMAIL_HOST_USER = os.environ["SES_SMTP_USER"]
EMAIL_HOST_PASSWORD = "{V}"
""",
        "t11_b64_32",
        True,
    ),
    (
        "app/go/internal/pay/client.go",
        """\
func newClient() *http.Client {
	req, _ := http.NewRequest("POST", "https://api.flutterwave.com/v3/charges", body)
	req.Header.Add("Authorization", "Bearer {V}")
	return http.DefaultClient
}
""",
        "t11_flutterwave",
        True,
    ),
    (
        "app/rust/src/notion.rs",
        """\
const NOTION_TOKEN: &str = "{V}";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}
""",
        "t11_notion",
        True,
    ),
    (
        "app/scala/src/main/resources/application.conf",
        """\
akka.persistence.jdbc {
  user = "dispatch"
  password = "{V}"
}
pusher {
  app-id = "1524433"
  key = "{V2}"
}
""",
        "t11_pusher_secret",
        True,
    ),
    (
        "app/perl/lib/Legacy/Db.pm",
        """\
package Legacy::Db;
use DBI;
my $dbh = DBI->connect("dbi:Oracle:host=ora01;sid=ERP", "erp_batch", "{V}",
    { RaiseError => 1 });
1;
""",
        "t11_url_pass",
        True,
    ),
    (
        "app/groovy/vars/publish.groovy",
        """\
def call() {
    def linear = new URL("https://api.linear.app/graphql").openConnection()
    linear.setRequestProperty("Authorization", "{V}")
}
""",
        "t11_linear",
        True,
    ),
    (
        "app/kotlin/src/main/kotlin/Mapbox.kt",
        """\
object MapboxConfig {
    const val DOWNLOADS_TOKEN = "{V}"
}
""",
        "t11_mapbox_secret",
        True,
    ),
    (
        "app/csharp/appsettings.Production.json",
        """\
{
  "ServiceBus": {
    "ConnectionString": "{V}"
  }
}
""",
        "t11_servicebus",
        True,
    ),
    (
        "app/node/src/storage.ts",
        """\
const sas = "{V}";
const client = new BlobServiceClient(`https://labstore.blob.core.windows.net?${sas}`);
""",
        "t11_sas",
        True,
    ),
    (
        "app/java/src/main/java/com/acme/Search.java",
        """\
public final class Search {
    private static final String ALGOLIA_APP_ID = "H7QK2M9ZPL";
    private static final String ALGOLIA_ADMIN_KEY = "{V}";
}
""",
        "t11_algolia_admin",
        True,
    ),
    (
        "scripts/sync_media.sh",
        """\
#!/bin/sh
rclone sync ./media remote:media \\
  --s3-access-key-id "$MEDIA_KEY_ID" \\
  --s3-secret-access-key {V} \\
  --s3-region eu-west-1
""",
        "aws_secret",
        True,
    ),
    (
        "scripts/healthcheck.sh",
        """\
#!/bin/bash
curl -fsS -H "PRIVATE-TOKEN: {V}" https://gitlab.corp.lan/api/v4/projects/12/pipelines
""",
        "gitlab",
        True,
    ),
    (
        "sql/seeds/003_service_accounts.sql",
        """\
INSERT INTO integrations (name, client_id, client_secret) VALUES
  ('erp-sync', 'erp-sync', '{V}'),
  ('kiosk', 'kiosk', '{V2}');
""",
        "t11_token_mix",
        True,
    ),
    (
        "sql/migrations/V12__create_linked_server.sql",
        """\
EXEC sp_addlinkedsrvlogin @rmtsrvname = N'ERPLINK', @useself = N'False',
     @rmtuser = N'erp_reader', @rmtpassword = N'{V}';
""",
        "t11_strong_pass",
        True,
    ),
    (
        "tests/fixtures/mqtt_test.py",
        """\
def test_broker_login(broker):
    client = connect("mqtt://telemetry:{V}@localhost:1883")
    assert client.is_connected()
""",
        "t11_word_pass",
        True,
    ),
    (
        "tests/integration/ldap_spec.rb",
        """\
RSpec.describe LdapAuth do
  it "binds as the service user" do
    expect(described_class.bind("cn=dispatch,dc=corp", "{V}")).to be true
  end
end
""",
        "t11_word_pass",
        True,
    ),
    (
        "tests/cassettes/shipping_rates.yaml",
        """\
interactions:
- request:
    method: POST
    uri: https://api.shipengine.com/v1/rates
    headers:
      API-Key:
      - {V}
  response:
    status: {code: 200, message: OK}
""",
        "t11_token_mix",
        True,
    ),
    (
        "docs/runbooks/restore-dwh.md",
        """\
# Restoring the warehouse

1. Stop the loaders.
2. Connect as the restore user:

   PGPASSWORD={V} psql -h dwh.internal -U restore analytics

3. Run `\\i restore.sql`.
""",
        "t11_strong_pass",
        True,
    ),
    (
        "docs/wiki/kiosk-setup.rst",
        """\
Kiosk setup
===========

The kiosk admin page is at ``https://kiosk-01.corp.lan/admin``; log in as
``kiosk`` with password ``{V}``.
""",
        "t11_word_pass",
        True,
    ),
    (
        "CHANGELOG.md",
        """\
## 2.4.1

- Fix retry on 429 from the shipping API.
- Rotate webhook signing secret to `{V}` (temporary, will move to vault).
""",
        "t11_hmac_secret",
        True,
    ),
    (
        ".github/ISSUE_TEMPLATE/bug_log.md",
        """\
Steps: ran the importer with

    IMPORTER_TOKEN={V} ./importer --dry-run

and it failed with 500.
""",
        "github",
        True,
    ),
    (
        "deploy/helm/dispatch/values-prod.yaml",
        """\
externalSecrets: false
smtp:
  host: smtp.postmarkapp.com
  username: {V}
  password: {V2}
""",
        "t11_uuid",
        True,
    ),
    (
        "deploy/k8s/registry-secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: twilio
type: Opaque
stringData:
  TWILIO_ACCOUNT_SID: AC1b5e0c27f4d9a83e6b2c7d1f0a9e4b3c
  TWILIO_AUTH_TOKEN: {V}
""",
        "tune6_twilio_token",
        True,
    ),
    (
        "deploy/ansible/inventories/plant/hosts.ini",
        """\
[scada]
hmi-01 ansible_host=10.50.1.10 ansible_user=operator ansible_password={V}
hmi-02 ansible_host=10.50.1.11 ansible_user=operator ansible_become_pass={V2}
""",
        "t11_word_pass",
        True,
    ),
    (
        "deploy/certs/bundle.pem",
        """\
# intermediate + two service keys
{V}
{V2}
""",
        "t11_two_keys",
        True,
    ),
    (
        "deploy/jwks/signing.json",
        """\
{
  "keys": [
    {"kty": "EC", "crv": "P-256", "kid": "dispatch-2025",
     "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
     "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
     "d": "{V}"}
  ]
}
""",
        "jwk_d",
        True,
    ),
    (
        "scripts/provision.bat",
        """\
@echo off
cmdkey /generic:TERMSRV/rdp-jump01 /user:CORP\\svc_rdp /pass:{V}
mstsc /v:rdp-jump01
""",
        "t11_strong_pass",
        True,
    ),
    (
        "app/php/src/Payment/Gateway.php",
        """\
$client = new \\GuzzleHttp\\Client(['base_uri' => 'https://api.mollie.com/v2/']);
$response = $client->post('payments', [
    'auth' => ['live_{V}', ''],
]);
""",
        "t11_token_mix",
        True,
    ),
    # ---------------------------------------------------------------- look-alikes
    (
        "legacy/intranet/Web.Debug.config",
        """\
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <connectionStrings>
    <add name="Payroll" connectionString="Data Source=(localdb)\\MSSQLLocalDB;Integrated Security=True;Password={V}" xdt:Transform="SetAttributes" xdt:Locator="Match(name)" />
  </connectionStrings>
</configuration>
""",
        "t11_placeholder",
        False,
    ),
    (
        "legacy/vb/Settings.vb",
        """\
Public Module Settings
    Public ReadOnly DbPassword As String = {V}
    Public ReadOnly SmtpPassword As String = {V2}
End Module
""",
        "tune7_vb_ref",
        False,
    ),
    (
        "ops/windows/unattend.template.xml",
        """\
<AdministratorPassword>
  <Value>{V}</Value>
  <PlainText>false</PlainText>
</AdministratorPassword>
""",
        "t11_placeholder",
        False,
    ),
    (
        "ops/windows/Set-Service.ps1",
        """\
$password = {V}
New-LocalUser -Name "svc_kiosk" -Password $password -PasswordNeverExpires
""",
        "tune7_ps_ref",
        False,
    ),
    (
        "legacy/batch/setenv.cmd",
        """\
@echo off
rem credentials are read from the Windows credential manager
set ORA_PASS=%{V}%
""",
        "t11_field_name",
        False,
    ),
    (
        "firmware/esp32/src/secrets.example.h",
        """\
#pragma once
#define WIFI_SSID "your-ssid"
#define WIFI_PASSWORD "{V}"
#define MQTT_PASSWORD "{V2}"
""",
        "t11_placeholder",
        False,
    ),
    (
        "firmware/esp32/src/ota.cpp",
        """\
// SHA-256 of the firmware image, checked before flashing
static const char* kImageDigest = "{V}";
static const char* kBuildId = "{V2}";
""",
        "t11_sha256",
        False,
    ),
    (
        "firmware/arduino/sensor/config.h",
        """\
// Device identity: public, printed on the label
#define DEVICE_UUID "{V}"
#define DEVICE_MODEL "TH-200"
""",
        "request_id",
        False,
    ),
    (
        "iot/mosquitto/passwd",
        """\
telemetry:{V}
warehouse-bridge:{V2}
""",
        "mosquitto_hash",
        False,
    ),
    (
        "games/unity/ProjectSettings/ProjectSettings.asset",
        """\
PlayerSettings:
  productGUID: {V}
  cloudProjectId: {V2}
  AndroidKeystoreName: '{inproject}: user.keystore'
""",
        "t11_md5",
        False,
    ),
    (
        "games/assets/fonts.css",
        """\
@font-face {
  font-family: "PixelOps";
  src: url(data:font/woff2;base64,{V}) format("woff2");
}
""",
        "t11_base64_font",
        False,
    ),
    (
        "science/R/fetch_data_template.R",
        """\
con <- dbConnect(RPostgres::Postgres(),
  host = "labdb.internal", user = "labdata",
  password = {V})
""",
        "t11_env_ref",
        False,
    ),
    (
        "science/julia/Manifest.toml",
        """\
[[deps.HTTP]]
deps = ["Base64", "Dates", "IniFile"]
git-tree-sha1 = "{V}"
uuid = "cd3eb016-35fb-5094-929b-558a96fad6f3"
version = "1.10.8"
""",
        "t11_sha1",
        False,
    ),
    (
        "science/fortran/ingest.example.nml",
        """\
&remote
  server   = 'sftp.example.org'
  username = 'labdata'
  password = '{V}'
/
""",
        "t11_placeholder",
        False,
    ),
    (
        "mobile/ios/Config/Base.xcconfig",
        """\
// Secrets come from CI; see Secrets.xcconfig.template
SEGMENT_WRITE_KEY = $({V})
DEVELOPMENT_TEAM = 7QK2M9ZPLX
""",
        "t11_field_name",
        False,
    ),
    (
        "mobile/ios/Dispatch/GoogleService-Info.plist",
        """\
<plist version="1.0">
<dict>
  <key>CLIENT_ID</key>
  <string>{V}</string>
  <key>BUNDLE_ID</key>
  <string>com.acme.dispatch</string>
</dict>
</plist>
""",
        "google_client_id",
        False,
    ),
    (
        "mobile/ios/Dispatch.xcodeproj/project.pbxproj",
        """\
/* Begin PBXBuildFile section */
		{V} /* AppDelegate.swift in Sources */ = {isa = PBXBuildFile; fileRef = 5F1A2B3C4D5E6F708192A3B4; };
/* End PBXBuildFile section */
""",
        "t11_pbx_id",
        False,
    ),
    (
        "mobile/android/gradle.properties.example",
        """\
RELEASE_STORE_PASSWORD={V}
RELEASE_KEY_PASSWORD={V2}
""",
        "t11_placeholder",
        False,
    ),
    (
        "mobile/android/app/src/main/res/values-tr/strings.xml",
        """\
<resources>
    <string name="error_wrong_password">{V}</string>
    <string name="hint_password">{V2}</string>
</resources>
""",
        "t11_i18n",
        False,
    ),
    (
        "mobile/flutter/lib/l10n/app_fi.arb",
        """\
{
  "passwordTooShort": "{V}",
  "@passwordTooShort": {"description": "Shown under the password field"}
}
""",
        "t11_i18n",
        False,
    ),
    (
        "mobile/flutter/pubspec.lock",
        """\
  http:
    dependency: "direct main"
    description:
      name: http
      sha256: "{V}"
      url: "https://pub.dev"
    source: hosted
    version: "1.2.1"
""",
        "t11_sha256",
        False,
    ),
    (
        "data/airflow/connections.example.yaml",
        """\
warehouse_pg:
  conn_type: postgres
  host: dwh.example.com
  password: "{V}"
""",
        "t11_placeholder",
        False,
    ),
    (
        "data/dbt/profiles.ci.yml",
        """\
analytics:
  outputs:
    ci:
      type: snowflake
      user: DBT_CI
      password: "{{ env_var('DBT_PASSWORD') }}"
      query_tag: "{V}"
""",
        "t11_ulid",
        False,
    ),
    (
        "data/notebooks/model_report.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "display_data",
   "metadata": {},
   "outputs": [{"data": {"image/png": "{V}"}, "output_type": "display_data"}],
   "source": []
  }
 ],
 "nbformat": 4
}
""",
        "png_b64",
        False,
    ),
    (
        "data/kafka/client_jaas.template.conf",
        """\
KafkaClient {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="${KAFKA_USER}"
  password="{V}";
};
""",
        "t11_placeholder",
        False,
    ),
    (
        "data/kafka/topics.yaml",
        """\
topics:
  - name: payments.password-reset.v1
    partitions: 12
    config:
      cleanup.policy: delete
    schema_id: "{V}"
""",
        "request_id",
        False,
    ),
    (
        "messaging/nats/server.conf",
        """\
authorization {
  users = [
    {user: dispatch, password: "{V}"}
  ]
}
""",
        "bcrypt",
        False,
    ),
    (
        "messaging/nats/operator.pub",
        """\
{V}
""",
        "nkey_public",
        False,
    ),
    (
        "config/salt/pillar/mysql.example.sls",
        """\
mysql:
  server:
    root_password: {V}
""",
        "t11_placeholder",
        False,
    ),
    (
        "config/chef/data_bags/smtp/prod.enc.json",
        """\
{
  "id": "prod",
  "smtp_password": {
    "encrypted_data": "{V}",
    "iv": "{V2}",
    "version": 1,
    "cipher": "aes-256-cbc"
  }
}
""",
        "t11_b64_32",
        False,
    ),
    (
        "config/puppet/hieradata/secure.eyaml",
        """\
profile::grafana::admin_password: >
    ENC[PKCS7,{V}]
""",
        "azure_key",
        False,
    ),
    (
        "observability/grafana/grafana.example.ini",
        """\
[security]
admin_user = admin
admin_password = {V}
""",
        "t11_changeme",
        False,
    ),
    (
        "observability/grafana/dashboards/auth.json",
        """\
{
  "title": "Auth failures",
  "uid": "{V}",
  "panels": [{"title": "invalid_password per minute", "type": "timeseries"}]
}
""",
        "t11_ulid",
        False,
    ),
    (
        "observability/prometheus/web.yml",
        """\
basic_auth_users:
  prometheus: {V}
""",
        "bcrypt",
        False,
    ),
    (
        "observability/otel/trace_sample.json",
        """\
{"traceId": "{V}", "spanId": "b7ad6b7169203331", "name": "POST /login", "attributes": {"http.status_code": 401}}
""",
        "t11_trace_id",
        False,
    ),
    (
        "proxy/nginx/conf.d/auth.conf",
        """\
location /admin/ {
    auth_basic "Restricted";
    auth_basic_user_file /etc/nginx/.htpasswd;
    add_header Content-Security-Policy "script-src 'nonce-{V}'";
}
""",
        "csp_nonce",
        False,
    ),
    (
        "proxy/nginx/.htpasswd",
        """\
ops:{V}
""",
        "apr1",
        False,
    ),
    (
        "db/mysql/my.cnf.dist",
        """\
[client]
user = root
password = {V}
""",
        "t11_placeholder",
        False,
    ),
    (
        "db/postgres/pg_hba_users.sql",
        """\
CREATE ROLE analytics LOGIN PASSWORD '{V}';
""",
        "scram_verifier",
        False,
    ),
    (
        "infra/pulumi/Pulumi.staging.yaml",
        """\
config:
  dispatch:dbPassword:
    secure: {V}
""",
        "t11_b64_32",
        False,
    ),
    (
        "infra/cdk/lib/secrets-stack.ts",
        """\
const dbSecret = secretsmanager.Secret.fromSecretCompleteArn(this, 'DbSecret', '{V}');
""",
        "secret_arn",
        False,
    ),
    (
        "infra/bicep/main.parameters.json",
        """\
{
  "parameters": {
    "administratorLoginPassword": {
      "reference": {
        "keyVault": {"id": "/subscriptions/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-payroll"},
        "secretName": "{V}"
      }
    }
  }
}
""",
        "secret_name",
        False,
    ),
    (
        "infra/wireguard/peers.conf",
        """\
[Peer]
# kiosk-01
PublicKey = {V}
AllowedIPs = 10.66.0.2/32
""",
        "t11_public_key_b64",
        False,
    ),
    (
        "ci/.drone.yml.example",
        """\
steps:
  - name: publish
    image: plugins/docker
    settings:
      password:
        from_secret: {V}
""",
        "t11_field_name",
        False,
    ),
    (
        "ci/.circleci/config.yml",
        """\
jobs:
  build:
    docker:
      - image: cimg/node@sha256:{V}
        auth:
          username: dispatchbot
          password: $DOCKERHUB_PASSWORD
""",
        "t11_sha256",
        False,
    ),
    (
        "ci/.gitlab-ci.yml",
        """\
deploy:
  script:
    - echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" --password-stdin
    - helm upgrade app ./chart --set image.digest={V}
""",
        "digest",
        False,
    ),
    (
        "serverless/wrangler.example.toml",
        """\
[vars]
UPSTREAM_TOKEN = "{V}"
""",
        "t11_placeholder",
        False,
    ),
    (
        "api/postman/Dispatch.postman_environment.json",
        """\
{
  "values": [
    {"key": "baseUrl", "value": "https://api.acme-dispatch.com", "enabled": true},
    {"key": "token", "value": "{V}", "type": "secret", "enabled": true}
  ]
}
""",
        "t11_placeholder",
        False,
    ),
    (
        "api/openapi/orders.yaml",
        """\
components:
  securitySchemes:
    ApiKey: {type: apiKey, in: header, name: X-Api-Key}
paths:
  /orders:
    get:
      parameters:
        - name: X-Request-Id
          in: header
          example: {V}
""",
        "request_id",
        False,
    ),
    (
        "api/openapi/auth.yaml",
        """\
    TokenResponse:
      type: object
      example:
        access_token: {V}
        token_type: Bearer
""",
        "t11_example_key",
        False,
    ),
    (
        "web/extension/manifest.json",
        """\
{
  "manifest_version": 3,
  "name": "Dispatch Helper",
  "key": "{V}",
  "version": "2.3.0"
}
""",
        "t11_ext_pubkey",
        False,
    ),
    (
        "web/public/index.html",
        """\
<script src="https://cdn.jsdelivr.net/npm/chart.js@4.4.1/dist/chart.umd.min.js"
        integrity="{V}" crossorigin="anonymous"></script>
""",
        "t11_integrity",
        False,
    ),
    (
        "mail/templates/reset_password.html",
        """\
<p>Hello {{ user.first_name }},</p>
<p>Use the link below to reset your password. It expires in {{ ttl_minutes }} minutes.</p>
<a href="https://app.acme-dispatch.com/reset?token={V}">Reset password</a>
""",
        "hash_marker",
        False,
    ),
    (
        "app/elixir/config/runtime.exs",
        """\
config :dispatch, Dispatch.Mailer,
  username: System.get_env("SMTP_USER"),
  password: {V}
""",
        "tune7_ex_ref",
        False,
    ),
    (
        "app/rust/src/config.rs",
        """\
pub fn api_key() -> anyhow::Result<String> {
    let key = {V}
    Ok(key)
}
""",
        "t11_env_ref",
        False,
    ),
    (
        "app/go/internal/auth/errors.go",
        """\
var (
	ErrPasswordTooShort = errors.New("password must be {V} characters")
	ErrTokenExpired     = errors.New("token expired")
)
""",
        "number_words",
        False,
    ),
    (
        "app/kotlin/src/test/kotlin/FixturesTest.kt",
        """\
@Test
fun `parses docs example`() {
    val uri = URI("{V}")
    assertEquals("example", uri.host.substringAfter('.').substringBefore('.'))
}
""",
        "t11_doc_url",
        False,
    ),
    (
        "docs/setup/local.md",
        """\
## Local broker

Point the app at a broker of your own:

```
MQTT_URL={V}
```
""",
        "t11_doc_url",
        False,
    ),
    (
        "docs/wiki/aws-cli.rst",
        """\
Configure the CLI as in the AWS guide:

.. code-block:: ini

   [default]
   aws_access_key_id = {V}
""",
        "aws_example",
        False,
    ),
    (
        "app/django/users/fixtures/users.json",
        """\
[
  {"model": "auth.user", "pk": 1,
   "fields": {"username": "kiosk", "password": "{V}", "is_staff": true}}
]
""",
        "pbkdf2_django",
        False,
    ),
    (
        "app/php/composer.lock",
        """\
        {
            "name": "guzzlehttp/guzzle",
            "version": "7.8.1",
            "dist": {"type": "zip", "shasum": "{V}"}
        }
""",
        "t11_sha1",
        False,
    ),
    (
        "app/csharp/Properties/launchSettings.json",
        """\
{
  "profiles": {
    "Dispatch": {
      "environmentVariables": {"ASPNETCORE_ENVIRONMENT": "Development"},
      "applicationUrl": "https://localhost:7043",
      "projectId": "{V}"
    }
  }
}
""",
        "request_id",
        False,
    ),
    (
        "deploy/helm/dispatch/values.yaml",
        """\
smtp:
  host: smtp.postmarkapp.com
  existingSecret: {V}
  passwordKey: password
""",
        "secret_name",
        False,
    ),
    (
        "deploy/k8s/sealed-smtp.yaml",
        """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
spec:
  encryptedData:
    password: {V}
""",
        "sealed",
        False,
    ),
    (
        "deploy/certs/ca-bundle.pem",
        """\
{V}
{V2}
""",
        "t11_cert",
        False,
    ),
    (
        "deploy/certs/server.key.enc",
        """\
{V}
""",
        "encrypted_key",
        False,
    ),
    (
        "sql/seeds/001_roles.sql",
        """\
INSERT INTO roles (id, name, description) VALUES
  ('{V}', 'password_admin', 'May reset other users'' passwords');
""",
        "request_id",
        False,
    ),
    (
        "tests/fixtures/checksums.txt",
        """\
{V}  dispatch-linux-amd64.tar.gz
{V2}  dispatch-darwin-arm64.tar.gz
""",
        "t11_sha256",
        False,
    ),
    (
        "CHANGELOG.old.md",
        """\
## 1.9.0

- Secrets now come from `{V}` instead of the config file.
""",
        "t11_secret_ref",
        False,
    ),
    (
        "docs/adr/0007-token-format.md",
        """\
Tokens are 32 random bytes drawn from the alphabet `{V}`, prefixed with `dsp_`.
""",
        "tune7_alphabet",
        False,
    ),
    (
        "web/src/theme.ts",
        """\
export const palette = {
  primary: "{V}",
  secondary: "{V2}",
};
""",
        "t11_color",
        False,
    ),
]

#: ``evalset.build`` makes this part's values with this class.
VALUES = Tune11Values
