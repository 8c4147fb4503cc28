"""Blind evaluation part ``tune14``: a game studio and its IoT/hardware side project.

Files in the shapes of a studio monorepo and its maker-lab offshoot: Unity and Unreal
project configs (``DefaultEngine.ini``, ``ProjectSettings.asset``, ``.meta`` YAML), C/C++
firmware headers (``secrets.h``, ``config.h``, ``credentials.h``), Arduino/ESP32/ESP8266
sketches with WiFi and MQTT credentials, PlatformIO ini files, ESPHome and Home Assistant
YAML (``secrets.yaml``, ``!secret`` references), Node-RED flows and settings, Mosquitto
configs and password files, Yocto/Buildroot recipes, Rust embedded crates, Lua and GDScript
game scripts, game backend services (PlayFab, Firebase, Photon, Nakama, Steamworks, Epic
Online Services, GameLift), anti-cheat and analytics SDK keys, console CI (Jenkins, GitLab,
Buildkite, Perforce configs and triggers), crash reporters, community Discord bots, and
docs and modding guides. Look-alikes share the same files and key names: Unity asset
GUIDs, EOS product/sandbox ids, Discord public keys, TLS fingerprints, Mosquitto and
crypt hashes, encrypted Node-RED credentials, ``!secret`` and env references.
"""

from __future__ import annotations

import base64
import string

import evalset
from evalset import ALNUM, Template

MULTI_SLOT = True

HEX = "0123456789abcdef"
UHEX = "0123456789ABCDEF"


class Tune14Values(evalset.Values):
    """Value generators of the ``tune14`` part (``t14_`` names only)."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "wyvern",
            "obsidian",
            "quokka",
            "zephyr",
            "mandrake",
            "basalt",
            "griffon",
            "tamarind",
            "halcyon",
            "cinder",
        ]
        self.users = [
            "buildfarm",
            "lobby",
            "matchmaker",
            "telemetry",
            "firmware",
            "gateway",
            "modbot",
            "packager",
        ]

    # -- positives --------------------------------------------------------------------------
    def t14_password(self) -> str:
        rng = self.rng
        shape = rng.randrange(5)
        if shape == 0:
            return self.pick(self.words).capitalize() + str(rng.randrange(1990, 2030)) + "!"
        if shape == 1:
            return self.s(rng.randrange(12, 20), ALNUM + "!#%&*-_.")
        if shape == 2:
            return self.pick(self.words) + "_" + self.pick(self.words) + self.s(2, string.digits)
        if shape == 3:
            return self.s(16)
        return self.pick(self.words).capitalize() + "@" + self.s(4, string.digits)

    def t14_weak(self) -> str:
        return self.pick(self.words) + self.pick(["", "1", "123", "2024", "!"])

    def t14_wifi(self) -> str:
        rng = self.rng
        shape = rng.randrange(3)
        if shape == 0:
            return "-".join(self.pick(self.words).capitalize() for _ in range(3)) + str(
                rng.randrange(10, 99)
            )
        if shape == 1:
            return self.s(rng.randrange(10, 24), ALNUM + "!$%")
        return self.pick(self.words) + self.s(4, string.digits) + self.pick(self.words)

    def t14_url_pass(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, string.digits)
        return self.s(self.rng.randrange(14, 22))

    def t14_hex32(self) -> str:
        return self.s(32, HEX)

    def t14_hex64(self) -> str:
        return self.s(64, HEX)

    def t14_steam_key(self) -> str:
        return self.s(32, UHEX)

    def t14_b64key(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t14_steam_guard(self) -> str:
        return base64.b64encode(self.rng.randbytes(20)).decode()

    def t14_playfab(self) -> str:
        return self.s(52, string.ascii_uppercase + string.digits)

    def t14_eos_secret(self) -> str:
        return self.s(43, ALNUM + "_-")

    def t14_api_key(self) -> str:
        return self.pick([self.s(32), self.s(40, HEX), self.s(28, ALNUM + "_-")])

    def t14_discord_bot(self) -> str:
        ident = str(self.rng.randrange(10**17, 10**19)).encode()
        head = base64.b64encode(ident).decode().rstrip("=")
        return f"{head}.{self.s(6, ALNUM + '_-')}.{self.s(38, ALNUM + '_-')}"

    def t14_discord_webhook(self) -> str:
        return self.discord_webhook()

    def t14_slack_webhook(self) -> str:
        return self.slack_webhook()

    def t14_google(self) -> str:
        return self.google()

    def t14_github(self) -> str:
        return self.pick([self.github(), self.github("ghs")])

    def t14_gitlab(self) -> str:
        return self.gitlab()

    def t14_npm(self) -> str:
        return self.npm()

    def t14_jwt(self) -> str:
        return self.jwt()

    def t14_rsa(self) -> str:
        return self.pem("RSA PRIVATE KEY", 12)

    def t14_ec(self) -> str:
        return self.ec_key()

    def t14_openssh(self) -> str:
        return self.openssh_key()

    def t14_pkcs8(self) -> str:
        return self.pkcs8_key()

    def t14_aws_id(self) -> str:
        return self.aws_id()

    def t14_aws_secret(self) -> str:
        return self.aws_secret()

    def t14_buildkite(self) -> str:
        return "bkua_" + self.s(40, HEX)

    def t14_buildkite_agent(self) -> str:
        return self.s(50, HEX)

    def t14_p4ticket(self) -> str:
        return self.s(32, UHEX)

    def t14_sentry_token(self) -> str:
        return self.sentry_user()

    def t14_basic(self) -> str:
        return base64.b64encode(f"{self.pick(self.users)}:{self.t14_password()}".encode()).decode()

    def t14_telegram(self) -> str:
        return self.telegram()

    def t14_gamekey_secret(self) -> str:
        return self.s(40, HEX)

    # -- look-alikes ------------------------------------------------------------------------
    def t14_placeholder(self) -> str:
        return self.pick(
            [
                "YOUR_WIFI_PASSWORD",
                "<mqtt-password>",
                "${MQTT_PASSWORD}",
                "changeme",
                "********",
                "REPLACE_WITH_YOUR_KEY",
                "xxxxxxxxxxxxxxxx",
                "<your-secret-key>",
                "{{ mqtt_password }}",
                "TODO_SET_ME",
            ]
        )

    def t14_ha_ref(self) -> str:
        return self.pick(
            [
                "!secret wifi_password",
                "!secret mqtt_password",
                "!secret api_encryption_key",
                "!secret ota_password",
                "!env_var MQTT_PASS",
            ]
        )

    def t14_c_ref(self) -> str:
        return self.pick(
            [
                "SECRET_WIFI_PASS",
                "CONFIG_ESP_WIFI_PASSWORD",
                "creds.mqtt_pass",
                'getenv("MQTT_PASSWORD")',
                "nvs_pass_buf",
            ]
        )

    def t14_ci_ref(self) -> str:
        return self.pick(
            [
                "$STEAM_BUILDER_PASSWORD",
                "${P4PASSWD}",
                "$CI_JOB_TOKEN",
                "${{ secrets.EOS_CLIENT_SECRET }}",
                "%env.PLAYFAB_SECRET%",
                "$(buildkite-agent secret get playfab_key)",
            ]
        )

    def t14_script_ref(self) -> str:
        return self.pick(
            [
                'os.getenv("NAKAMA_SERVER_KEY")',
                'OS.get_environment("NAKAMA_KEY")',
                'ProjectSettings.get_setting("backend/server_key")',
                "Config.ServerKey",
                'env::var("MQTT_PASS")',
            ]
        )

    def t14_rust_ref(self) -> str:
        return self.pick(['env!("PASSWORD")', 'option_env!("WIFI_PASS").unwrap_or("")'])

    def t14_lua_ref(self) -> str:
        return self.pick(['os.getenv("LEADERBOARD_KEY")', 'Settings.get("leaderboard_key")'])

    def t14_gd_ref(self) -> str:
        return self.pick(
            [
                'OS.get_environment("NAKAMA_KEY")',
                'ProjectSettings.get_setting("backend/server_key")',
            ]
        )

    def t14_secret_path(self) -> str:
        return self.pick(["/mosquitto/config/passwd", "/etc/mosquitto/passwd", "/run/secrets/mqtt"])

    def t14_example_id(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])

    def t14_guid(self) -> str:
        return self.s(32, HEX)

    def t14_eos_id(self) -> str:
        return self.s(32, HEX)

    def t14_discord_pubkey(self) -> str:
        return self.s(64, HEX)

    def t14_snowflake(self) -> str:
        return str(self.rng.randrange(10**17, 10**19))

    def t14_fingerprint(self) -> str:
        sep = self.pick([" ", ":"])
        return sep.join(self.s(2, UHEX) for _ in range(20))

    def t14_cert(self) -> str:
        return self.certificate()

    def t14_public_pem(self) -> str:
        return self.public_pem()

    def t14_ssh_pub(self) -> str:
        return self.ssh_public()

    def t14_mosq_hash(self) -> str:
        return self.mosquitto_hash()

    def t14_crypt(self) -> str:
        return self.sha512crypt()

    def t14_bcrypt(self) -> str:
        return self.bcrypt()

    def t14_sops(self) -> str:
        return self.sops_value()

    def t14_vault(self) -> str:
        return self.ansible_vault()

    def t14_build_id(self) -> str:
        return self.pick([self.request_id(), self.s(12, HEX), self.s(24, HEX)])

    def t14_sha(self) -> str:
        return self.git_sha()

    def t14_digest(self) -> str:
        return self.digest()

    def t14_changelist(self) -> str:
        return str(self.rng.randrange(100000, 9999999))

    def t14_i18n(self) -> str:
        return self.pick(
            [
                "Enter Wi-Fi password",
                "Mot de passe du réseau",
                "WLAN-Passwort eingeben",
                "Contraseña incorrecta",
                "パスワードが違います",
                "Неверный пароль",
                "Senha da rede Wi-Fi",
                "密码错误，请重试",  # noqa: RUF001
            ]
        )

    def t14_doc_pass(self) -> str:
        return self.pick(self.words) + self.s(3, string.digits)

    def t14_title_id(self) -> str:
        return self.s(5, UHEX)

    def t14_node_red_enc(self) -> str:
        return self.s(32, HEX) + base64.b64encode(self.rng.randbytes(60)).decode()

    def t14_uuid_id(self) -> str:
        return self.request_id()

    def t14_fleet(self) -> str:
        return "fleet-" + self.request_id()

    def t14_firebase_app(self) -> str:
        return f"1:{self.s(12, string.digits)}:android:{self.s(16, HEX)}"

    def t14_mac(self) -> str:
        return ":".join(self.s(2, UHEX) for _ in range(6))

    def t14_rule(self) -> str:
        return self.pick(["8", "12", "63", "64", "16"])

    def t14_nonce(self) -> str:
        return base64.b64encode(self.rng.randbytes(16)).decode()


VALUES = Tune14Values

TEMPLATES: list[Template] = [
    # ---------------------------------------------------------------- firmware: positives
    (
        "firmware/lampd/include/secrets.h",
        """\
#pragma once
// Copy of secrets.h.example for the studio lobby lamp. Not for the public repo!

#define SECRET_SSID "StudioFloor2"
#define SECRET_WIFI_PASS "{V}"
#define SECRET_WIFI_PASS_FALLBACK "{V2}"

#define MQTT_HOST "10.40.0.12"
#define MQTT_PORT 1883
""",
        "t14_wifi",
        True,
    ),
    (
        "firmware/lampd/include/secrets.h.example",
        """\
#pragma once
// Copy this file to secrets.h and fill in your own network.

#define SECRET_SSID "YourNetwork"
#define SECRET_WIFI_PASS "{V}"
#define SECRET_WIFI_PASS_FALLBACK "{V2}"

#define MQTT_HOST "192.168.1.10"
#define MQTT_PORT 1883
""",
        "t14_placeholder",
        False,
    ),
    (
        "firmware/scoreboard/src/config.h",
        """\
#ifndef SCOREBOARD_CONFIG_H
#define SCOREBOARD_CONFIG_H

#include <stdint.h>

static const char *const kWifiSsid = "arcade-iot";
static const char *const kWifiPassword = "{V}";
static const char *const kMqttUser = "scoreboard";
static const char *const kMqttPassword = "{V2}";
static const uint16_t kMqttPort = 8883;

#endif /* SCOREBOARD_CONFIG_H */
""",
        "t14_password",
        True,
    ),
    (
        "firmware/scoreboard/src/config_ci.h",
        """\
#ifndef SCOREBOARD_CONFIG_H
#define SCOREBOARD_CONFIG_H

/* Generated by tools/gen_config.py from the CI environment. */
#include "ci_secrets.h"

static const char *const kWifiSsid = "arcade-iot";
static const char *const kWifiPassword = {V};
static const char *const kMqttUser = "scoreboard";
static const uint16_t kMqttPort = 8883;

#endif
""",
        "t14_c_ref",
        False,
    ),
    (
        "firmware/badge/credentials.h",
        """\
// credentials.h -- conference badge (GDC booth build)
// DO NOT COMMIT. (oops)

const char* ssid     = "GDC-Booth-417";
const char* password = "{V}";

// OTA updates from the laptop
const char* ota_password = "{V2}";
""",
        "t14_weak",
        True,
    ),
    (
        "firmware/arcade_cab/arcade_cab.ino",
        """\
#include <WiFi.h>
#include <PubSubClient.h>

WiFiClient net;
PubSubClient mqtt(net);

void setup() {
  Serial.begin(115200);
  WiFi.begin("cabinet-net", "{V}");
  while (WiFi.status() != WL_CONNECTED) {
    delay(250);
  }
  mqtt.setServer("mqtt.studio.lan", 1883);
  mqtt.connect("cab-01", "cabinet", "{V2}");
}

void loop() {
  mqtt.loop();
}
""",
        "t14_password",
        True,
    ),
    (
        "firmware/arcade_cab/arcade_cab_public.ino",
        """\
#include <WiFi.h>
#include <PubSubClient.h>
#include "arduino_secrets.h"

WiFiClient net;
PubSubClient mqtt(net);

void setup() {
  Serial.begin(115200);
  WiFi.begin(SECRET_SSID, {V});
  mqtt.setServer("mqtt.studio.lan", 1883);
  mqtt.connect("cab-01", "cabinet", {V2});
}
""",
        "t14_c_ref",
        False,
    ),
    (
        "firmware/doorbell/doorbell.ino",
        """\
#include <ESP8266WiFi.h>
#include <WiFiClientSecure.h>
#include <ArduinoOTA.h>

#define WLAN_SSID "devkit-lab"
#define WLAN_PASS "{V}"

void setup() {
  WiFi.mode(WIFI_STA);
  WiFi.begin(WLAN_SSID, WLAN_PASS);
  ArduinoOTA.setHostname("doorbell");
  ArduinoOTA.setPassword("{V2}");
  ArduinoOTA.begin();
}
""",
        "t14_wifi",
        True,
    ),
    (
        "firmware/doorbell/tls.ino",
        """\
#include <ESP8266WiFi.h>
#include <WiFiClientSecure.h>

// SHA1 fingerprint of the telemetry endpoint certificate (rotates yearly)
const char fingerprint[] PROGMEM = "{V}";
// old cert, keep until March
const char fingerprint_prev[] PROGMEM = "{V2}";

WiFiClientSecure client;

void connectTelemetry() {
  client.setFingerprint(fingerprint);
  client.connect("telemetry.studio.games", 443);
}
""",
        "t14_fingerprint",
        False,
    ),
    (
        "firmware/doorbell/ota.h",
        """\
#pragma once
// OTA password is stored hashed; ArduinoOTA compares the MD5 of what the uploader sends.
// To regenerate: echo -n "<pw>" | md5sum
#define OTA_PASSWORD_HASH "{V}"
""",
        "t14_hex32",
        False,
    ),
    (
        "firmware/awsiot/certs.h",
        """\
#pragma once
#include <pgmspace.h>

#define THINGNAME "lobby-sensor-03"
const char AWS_IOT_ENDPOINT[] = "a3k7odshaiipe8-ats.iot.eu-west-1.amazonaws.com";

// Device private key
static const char AWS_CERT_PRIVATE[] PROGMEM = R"KEY(
{V}
)KEY";
""",
        "t14_rsa",
        True,
    ),
    (
        "firmware/awsiot/ca.h",
        """\
#pragma once
#include <pgmspace.h>

// Amazon Root CA 1
static const char AWS_CERT_CA[] PROGMEM = R"EOF(
{V}
)EOF";
""",
        "t14_cert",
        False,
    ),
    (
        "firmware/awsiot/device_cert.h",
        """\
#pragma once
// Device certificate (public half, safe to share with the cloud team)
static const char AWS_CERT_CRT[] PROGMEM = R"EOF(
{V}
)EOF";
""",
        "t14_cert",
        False,
    ),
    (
        "firmware/gamepad_bridge/main/Kconfig.projbuild",
        """\
menu "Gamepad bridge configuration"

config ESP_WIFI_SSID
    string "WiFi SSID"
    default "playtest-lab"

config ESP_WIFI_PASSWORD
    string "WiFi Password"
    default "{V}"
    help
        WiFi password (WPA or WPA2) for the playtest lab.

endmenu
""",
        "t14_wifi",
        True,
    ),
    (
        "firmware/gamepad_bridge/sdkconfig.defaults",
        """\
CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y
CONFIG_ESP_WIFI_SSID="playtest-lab"
CONFIG_ESP_WIFI_PASSWORD="{V}"
CONFIG_BT_ENABLED=y
CONFIG_BTDM_CTRL_MODE_BLE_ONLY=y
CONFIG_LOG_DEFAULT_LEVEL_INFO=y
""",
        "t14_password",
        True,
    ),
    (
        "firmware/gamepad_bridge/main/wifi.c",
        """\
#include <string.h>
#include "esp_wifi.h"
#include "nvs.h"

static char nvs_pass_buf[64];

void wifi_start(void)
{
    wifi_config_t cfg = { 0 };
    strlcpy((char *)cfg.sta.ssid, CONFIG_ESP_WIFI_SSID, sizeof(cfg.sta.ssid));
    strlcpy((char *)cfg.sta.password, {V}, sizeof(cfg.sta.password));
    cfg.sta.threshold.authmode = WIFI_AUTH_WPA2_PSK;
    esp_wifi_set_config(WIFI_IF_STA, &cfg);
    esp_wifi_start();
}
""",
        "t14_c_ref",
        False,
    ),
    (
        "firmware/gamepad_bridge/main/provision.c",
        """\
#include "wifi_provisioning/manager.h"

/* Proof-of-possession printed on the box sticker, per unit.
 * Dev units all share this one: */
static const char *pop = "{V}";

void start_provisioning(void)
{
    wifi_prov_mgr_start_provisioning(WIFI_PROV_SECURITY_1, pop, "PROV_PAD", NULL);
}
""",
        "t14_api_key",
        True,
    ),
    (
        "firmware/led_wall/platformio.ini",
        """\
[platformio]
default_envs = esp32dev

[env:esp32dev]
platform = espressif32
board = esp32dev
framework = arduino
monitor_speed = 115200
lib_deps =
    knolleary/PubSubClient@^2.8
    fastled/FastLED@^3.6.0
build_flags =
    -DWIFI_SSID=\\"ledwall\\"
    -DWIFI_PASS=\\"{V}\\"
    -DMQTT_PASS=\\"{V2}\\"
upload_protocol = espota
upload_flags =
    --auth={V3}
""",
        "t14_password",
        True,
    ),
    (
        "firmware/led_wall/platformio_ci.ini",
        """\
[env:esp32dev]
platform = espressif32
board = esp32dev
framework = arduino
build_flags =
    -DWIFI_SSID=\\"ledwall\\"
    -DWIFI_PASS=\\"${sysenv.WIFI_PASS}\\"
    -DFW_BUILD_ID=\\"{V}\\"
upload_protocol = espota
upload_flags =
    --auth=${sysenv.OTA_PASS}
""",
        "t14_build_id",
        False,
    ),
    (
        "firmware/led_wall/src/main.cpp",
        """\
#include <Arduino.h>
#include <FastLED.h>

// Unity asset id of the matching in-game prefab, so the wall mirrors the lobby scene
static const char *kPrefabGuid = "{V}";
static const char *kSceneGuid = "{V2}";

CRGB leds[512];

void setup() {
  FastLED.addLeds<WS2812B, 5, GRB>(leds, 512);
}
""",
        "t14_guid",
        False,
    ),
    (
        "firmware/sensor_node/src/main.rs",
        """\
#![no_std]
#![no_main]

use esp_backtrace as _;
use esp_println::println;

const SSID: &str = "maker-lab";
const PASSWORD: &str = "{V}";
const MQTT_BROKER: &str = "10.40.0.12";

#[esp_hal::entry]
fn main() -> ! {
    println!("connecting to {}", SSID);
    let _ = PASSWORD;
    loop {}
}
""",
        "t14_wifi",
        True,
    ),
    (
        "firmware/sensor_node/src/config.rs",
        """\
// Credentials are baked in at compile time from the environment:
//   SSID=maker-lab PASSWORD=... cargo run --release
pub const SSID: &str = env!("SSID");
pub const PASSWORD: &str = {V};
pub const MQTT_USER: &str = "sensor";
""",
        "t14_rust_ref",
        False,
    ),
    (
        "firmware/sensor_node/cfg.toml",
        """\
[sensor-node]
wifi_ssid = "maker-lab"
wifi_psk = "{V}"
mqtt_user = "sensor"
mqtt_pass = "{V2}"
report_interval_s = 30
""",
        "t14_password",
        True,
    ),
    (
        "firmware/sensor_node/cfg.toml.example",
        """\
[sensor-node]
wifi_ssid = "your-ssid"
wifi_psk = "{V}"
mqtt_user = "sensor"
mqtt_pass = "{V2}"
report_interval_s = 30
""",
        "t14_placeholder",
        False,
    ),
    (
        "firmware/sensor_node/.cargo/config.toml",
        """\
[target.xtensa-esp32-none-elf]
runner = "espflash flash --monitor"

[env]
ESP_LOG = "info"
SSID = "maker-lab"
PASSWORD = "{V}"

[build]
target = "xtensa-esp32-none-elf"
""",
        "t14_weak",
        True,
    ),
    (
        "firmware/sensor_node/Cargo.lock.excerpt",
        """\
[[package]]
name = "esp-wifi"
version = "0.7.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "embassy-net"
version = "0.4.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
""",
        "t14_digest",
        False,
    ),
    (
        "firmware/trophy/trophy.ino",
        """\
#include <WiFi.h>
#include <HTTPClient.h>

// Posts a unlock event to the game backend when the physical trophy is lifted.
const char* WIFI_SSID = "showfloor";
const char* WIFI_PSK  = SECRET_WIFI_PSK;

void postUnlock() {
  HTTPClient http;
  http.begin("https://api.studio.games/v1/trophy/unlock");
  http.addHeader("Authorization", "Basic {V}");
  http.POST("{}");
}
""",
        "t14_basic",
        True,
    ),
    # ---------------------------------------------------------------- home automation
    (
        "homelab/esphome/secrets.yaml",
        """\
# ESPHome secrets for the studio sensors
wifi_ssid: "studio-iot"
wifi_password: "{V}"
ap_fallback_password: "{V2}"
ota_password: "{V3}"
""",
        "t14_wifi",
        True,
    ),
    (
        "homelab/esphome/co2-meeting-room.yaml",
        """\
esphome:
  name: co2-meeting-room

esp32:
  board: esp32dev

wifi:
  ssid: !secret wifi_ssid
  password: {V}
  ap:
    ssid: "CO2 Fallback"
    password: {V2}

api:
  encryption:
    key: {V3}

ota:
  - platform: esphome
    password: !secret ota_password
""",
        "t14_ha_ref",
        False,
    ),
    (
        "homelab/esphome/neon-sign.yaml",
        """\
esphome:
  name: neon-sign

esp8266:
  board: d1_mini

wifi:
  ssid: studio-iot
  password: "{V}"

api:
  encryption:
    key: "{V2}"

ota:
  - platform: esphome
    password: "{V3}"

light:
  - platform: monochromatic
    name: "Neon logo"
    output: neon_pwm
""",
        "t14_b64key",
        True,
    ),
    (
        "homelab/homeassistant/secrets.yaml",
        """\
# Home Assistant secrets
mqtt_password: {V}
unifi_password: "{V2}"
grafana_admin: '{V3}'
latitude: 52.3702
longitude: 4.8952
""",
        "t14_password",
        True,
    ),
    (
        "homelab/homeassistant/configuration.yaml",
        """\
homeassistant:
  name: Studio
  unit_system: metric

http:
  use_x_forwarded_for: true
  trusted_proxies:
    - 10.40.0.0/24

mqtt:
  sensor:
    - name: "Render farm temperature"
      state_topic: "farm/rack1/temp"

notify:
  - platform: smtp
    server: smtp.studio.games
    username: alerts@studio.games
    password: {V}
    recipient: ops@studio.games
""",
        "t14_ha_ref",
        False,
    ),
    (
        "homelab/homeassistant/packages/lobby.yaml",
        """\
rest_command:
  lobby_screen_refresh:
    url: "http://10.40.0.30:8123/api/services/browser_mod/refresh"
    method: POST
    headers:
      authorization: "Bearer {V}"
      content-type: "application/json"
""",
        "t14_jwt",
        True,
    ),
    (
        "homelab/homeassistant/.storage/auth_provider.homeassistant",
        """\
{
  "version": 1,
  "key": "auth_provider.homeassistant",
  "data": {
    "users": [
      {
        "username": "studio",
        "password": "{V}"
      }
    ]
  }
}
""",
        "t14_bcrypt",
        False,
    ),
    (
        "homelab/nodered/settings.js",
        """\
module.exports = {
    uiPort: process.env.PORT || 1880,
    flowFile: 'flows.json',
    credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET,
    adminAuth: {
        type: "credentials",
        users: [{
            username: "admin",
            password: "{V}",
            permissions: "*"
        }]
    },
    functionGlobalContext: {}
};
""",
        "t14_bcrypt",
        False,
    ),
    (
        "homelab/nodered/settings.prod.js",
        """\
module.exports = {
    uiPort: process.env.PORT || 1880,
    flowFile: 'flows.json',
    // encrypts flows_cred.json; losing this means re-entering every credential
    credentialSecret: "{V}",
    httpNodeAuth: { user: "dashboard", pass: "{V2}" },
    logging: { console: { level: "info" } }
};
""",
        "t14_api_key",
        True,
    ),
    (
        "homelab/nodered/flows_cred.json",
        """\
{
    "$": "{V}"
}
""",
        "t14_node_red_enc",
        False,
    ),
    (
        "homelab/nodered/flows.json",
        """\
[
    {
        "id": "a1f0c3b2.5e8d",
        "type": "mqtt-broker",
        "name": "studio broker",
        "broker": "10.40.0.12",
        "port": "1883",
        "clientid": "nodered",
        "credentials": {
            "user": "nodered",
            "password": "{V}"
        }
    },
    {
        "id": "77c1e0aa.04b1",
        "type": "discord-token",
        "name": "community bot",
        "credentials": {
            "token": "{V2}"
        }
    }
]
""",
        "t14_password",
        True,
    ),
    (
        "homelab/nodered/flows_export.json",
        """\
[
    {
        "id": "{V}",
        "type": "mqtt in",
        "z": "{V2}",
        "name": "arcade telemetry",
        "topic": "arcade/+/score",
        "qos": "1",
        "broker": "{V3}",
        "x": 140,
        "y": 80,
        "wires": [["{V4}"]]
    }
]
""",
        "t14_build_id",
        False,
    ),
    (
        "homelab/mosquitto/passwd",
        """\
nodered:{V}
scoreboard:{V2}
sensor:{V3}
homeassistant:{V4}
""",
        "t14_mosq_hash",
        False,
    ),
    (
        "homelab/mosquitto/passwd.plain",
        """\
# plaintext input for `mosquitto_passwd -U passwd.plain` -- delete after converting!
nodered:{V}
scoreboard:{V2}
sensor:{V3}
""",
        "t14_password",
        True,
    ),
    (
        "homelab/mosquitto/mosquitto.conf",
        """\
persistence true
persistence_location /mosquitto/data/

listener 1883
allow_anonymous false
password_file {V}

listener 8883
cafile /mosquitto/certs/ca.crt
certfile /mosquitto/certs/server.crt
keyfile /mosquitto/certs/server.key
""",
        "t14_secret_path",
        False,
    ),
    (
        "homelab/mosquitto/bridge.conf",
        """\
connection cloud-bridge
address mqtt.studio.games:8883
topic arcade/# out 1
remote_clientid studio-lab-bridge
remote_username lab-bridge
remote_password {V}
bridge_cafile /mosquitto/certs/ca.crt
try_private true
""",
        "t14_password",
        True,
    ),
    (
        "homelab/docker-compose.yml",
        """\
services:
  mosquitto:
    image: eclipse-mosquitto:2
    ports: ["1883:1883"]
  nodered:
    image: nodered/node-red:3.1
    environment:
      - NODE_RED_CREDENTIAL_SECRET={V}
  influxdb:
    image: influxdb:2.7
    environment:
      DOCKER_INFLUXDB_INIT_USERNAME: admin
      DOCKER_INFLUXDB_INIT_PASSWORD: {V2}
      DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: {V3}
""",
        "t14_api_key",
        True,
    ),
    (
        "homelab/docker-compose.override.yml",
        """\
services:
  nodered:
    environment:
      - NODE_RED_CREDENTIAL_SECRET=${NODE_RED_CREDENTIAL_SECRET:?set in .env}
  influxdb:
    environment:
      DOCKER_INFLUXDB_INIT_PASSWORD: {V}
      DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: {V2}
""",
        "t14_placeholder",
        False,
    ),
    (
        "homelab/grafana/provisioning/datasources/influx.yaml",
        """\
apiVersion: 1
datasources:
  - name: InfluxDB
    type: influxdb
    access: proxy
    url: http://influxdb:8086
    jsonData:
      version: Flux
      organization: studio
      defaultBucket: arcade
    secureJsonData:
      token: {V}
""",
        "t14_sops",
        False,
    ),
    (
        "homelab/zigbee2mqtt/configuration.yaml",
        """\
homeassistant: true
permit_join: false
mqtt:
  base_topic: zigbee2mqtt
  server: mqtt://10.40.0.12
  user: z2m
  password: '{V}'
serial:
  port: /dev/ttyACM0
advanced:
  network_key: GENERATE
  pan_id: 6754
frontend:
  port: 8080
""",
        "t14_weak",
        True,
    ),
    (
        "homelab/README.md",
        """\
# Studio lab automation

The broker runs on the NUC under the desk. To watch the arcade scores:

```sh
mosquitto_sub -h 10.40.0.12 -u nodered -P '{V}' -t 'arcade/#' -v
```

Grafana is at http://10.40.0.30:3000 (log in as `admin` / `{V2}`).
""",
        "t14_weak",
        True,
    ),
    (
        "homelab/docs/onboarding.md",
        """\
# Adding a new sensor

1. Flash ESPHome with the `secrets.yaml` from the vault (ask in #maker-lab).
2. Point it at the broker:

   ```
   mqtt://sensor:{V}@broker.example.com:1883
   ```

   (use your real broker and the password from the vault; the one above is just an example).
3. Check it appears in Home Assistant.
""",
        "t14_doc_pass",
        False,
    ),
    (
        "homelab/telegraf/telegraf.conf",
        """\
[agent]
  interval = "10s"

[[inputs.mqtt_consumer]]
  servers = ["tcp://10.40.0.12:1883"]
  topics = ["arcade/+/score", "farm/+/temp"]
  username = "telegraf"
  password = "{V}"
  data_format = "json"

[[outputs.influxdb_v2]]
  urls = ["http://influxdb:8086"]
  token = "{V2}"
  organization = "studio"
  bucket = "arcade"
""",
        "t14_url_pass",
        True,
    ),
    # ---------------------------------------------------------------- yocto / buildroot
    (
        "kiosk-os/meta-studio/recipes-core/images/studio-kiosk-image.bb",
        """\
SUMMARY = "Arcade cabinet kiosk image"
LICENSE = "MIT"

inherit core-image extrausers

IMAGE_INSTALL:append = " mosquitto-clients chromium-x11 kiosk-launcher"

# root login on the serial console for bring-up
EXTRA_USERS_PARAMS = "\\
    usermod -P '{V}' root; \\
    useradd -P '{V2}' arcade; \\
"
""",
        "t14_password",
        True,
    ),
    (
        "kiosk-os/meta-studio/recipes-core/images/studio-kiosk-image-release.bb",
        """\
SUMMARY = "Arcade cabinet kiosk image (release)"
LICENSE = "MIT"

inherit core-image extrausers

# Hashed with: openssl passwd -6
EXTRA_USERS_PARAMS = "\\
    usermod -p '{V}' root; \\
    useradd -p '{V2}' arcade; \\
"
""",
        "t14_crypt",
        False,
    ),
    (
        "kiosk-os/meta-studio/recipes-connectivity/wpa/wpa-supplicant/wpa_supplicant.conf",
        """\
ctrl_interface=/var/run/wpa_supplicant
update_config=1
country=NL

network={
    ssid="cabinet-net"
    psk="{V}"
    key_mgmt=WPA-PSK
}

network={
    ssid="showfloor"
    psk="{V2}"
    priority=5
}
""",
        "t14_wifi",
        True,
    ),
    (
        "kiosk-os/meta-studio/recipes-connectivity/wpa/wpa-supplicant/wpa_supplicant-hashed.conf",
        """\
ctrl_interface=/var/run/wpa_supplicant
update_config=1

# psk below is the derived 256-bit key from wpa_passphrase, not the passphrase
network={
    ssid="cabinet-net"
    #psk="see 1Password: Cabinet WiFi"
    psk={V}
}
""",
        "t14_hex64",
        True,
    ),
    (
        "kiosk-os/meta-studio/recipes-support/kiosk-launcher/kiosk-launcher_1.4.bb",
        """\
SUMMARY = "Starts the attract-mode build in kiosk mode"
LICENSE = "CLOSED"

SRC_URI = "git://git.studio.games/kiosk/launcher.git;protocol=https;branch=main"
SRCREV = "{V}"

S = "${WORKDIR}/git"

inherit systemd
SYSTEMD_SERVICE:${PN} = "kiosk-launcher.service"
""",
        "t14_sha",
        False,
    ),
    (
        "kiosk-os/meta-studio/recipes-support/telemetry/telemetry_0.3.bb",
        """\
SUMMARY = "Cabinet telemetry agent"
LICENSE = "CLOSED"

SRC_URI = "https://artifacts.studio.games/telemetry/telemetry-${PV}.tar.gz"
SRC_URI[sha256sum] = "{V}"

do_install:append() {
    install -d ${D}${sysconfdir}/telemetry
    echo "ingest_key=${TELEMETRY_INGEST_KEY}" > ${D}${sysconfdir}/telemetry/agent.conf
}
""",
        "t14_digest",
        False,
    ),
    (
        "kiosk-os/meta-studio/conf/site.conf",
        """\
# Local build-host overrides (not in the layer)
DL_DIR = "/srv/yocto/downloads"
SSTATE_DIR = "/srv/yocto/sstate"
BB_NUMBER_THREADS = "16"
PREMIRRORS:prepend = "\\
    git://.*/.* https://buildfarm:{V}@mirror.studio.games/yocto/ \\
"
""",
        "t14_url_pass",
        True,
    ),
    (
        "kiosk-os/buildroot/configs/cabinet_defconfig",
        """\
BR2_aarch64=y
BR2_TOOLCHAIN_EXTERNAL=y
BR2_TARGET_GENERIC_HOSTNAME="cabinet"
BR2_TARGET_GENERIC_ISSUE="Studio arcade cabinet"
BR2_TARGET_GENERIC_ROOT_PASSWD="{V}"
BR2_SYSTEM_DHCP="eth0"
BR2_PACKAGE_DROPBEAR=y
BR2_PACKAGE_MOSQUITTO=y
""",
        "t14_weak",
        True,
    ),
    (
        "kiosk-os/buildroot/configs/cabinet_release_defconfig",
        """\
BR2_aarch64=y
BR2_TARGET_GENERIC_HOSTNAME="cabinet"
# root password is hashed; buildroot passes it through unchanged
BR2_TARGET_GENERIC_ROOT_PASSWD="{V}"
BR2_TARGET_GENERIC_PASSWD_SHA512=y
BR2_PACKAGE_DROPBEAR=y
""",
        "t14_crypt",
        False,
    ),
    (
        "kiosk-os/buildroot/board/cabinet/users.txt",
        """\
# makeusers table: user uid group gid password home shell groups comment
arcade -1 arcade -1 ={V} /home/arcade /bin/sh video,input Attract mode user
ops -1 ops -1 ={V2} /home/ops /bin/sh wheel Field service
""",
        "t14_password",
        True,
    ),
    (
        "kiosk-os/buildroot/board/cabinet/rootfs_overlay/root/.ssh/authorized_keys",
        """\
{V}
{V2}
""",
        "t14_ssh_pub",
        False,
    ),
    (
        "kiosk-os/buildroot/board/cabinet/rootfs_overlay/etc/dropbear/dropbear_ed25519_host_key.pem",
        """\
{V}
""",
        "t14_openssh",
        True,
    ),
    (
        "kiosk-os/buildroot/board/cabinet/swupdate/public.pem",
        """\
{V}
""",
        "t14_public_pem",
        False,
    ),
    (
        "kiosk-os/buildroot/board/cabinet/swupdate/signing-key.pem",
        """\
{V}
""",
        "t14_pkcs8",
        True,
    ),
    # ---------------------------------------------------------------- unity / unreal
    (
        "game/ProjectSettings/ProjectSettings.asset",
        """\
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!129 &1
PlayerSettings:
  m_ObjectHideFlags: 0
  serializedVersion: 26
  productGUID: 4f1e8a0c2d9b47f3a6c1e5d07b2a9f18
  companyName: Halfmoon Forge
  productName: Cinderfall
  AndroidKeystoreName: '{inproject}: Keystores/cinderfall.keystore'
  AndroidKeyaliasName: cinderfall-release
  AndroidKeystorePass: {V}
  AndroidKeyaliasPass: {V2}
  AndroidMinSdkVersion: 24
  bundleVersion: 1.8.2
""",
        "t14_password",
        True,
    ),
    (
        "game/ProjectSettings/ProjectSettings.ci.asset",
        """\
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!129 &1
PlayerSettings:
  companyName: Halfmoon Forge
  productName: Cinderfall
  productGUID: {V}
  AndroidKeystoreName: '{inproject}: Keystores/cinderfall.keystore'
  AndroidKeyaliasName: cinderfall-release
  AndroidKeystorePass:
  AndroidKeyaliasPass:
  cloudProjectId: {V2}
""",
        "t14_guid",
        False,
    ),
    (
        "game/Assets/Prefabs/LobbyPortal.prefab.meta",
        """\
fileFormatVersion: 2
guid: {V}
PrefabImporter:
  externalObjects: {}
  userData:
  assetBundleName: lobby
  assetBundleVariant:
""",
        "t14_guid",
        False,
    ),
    (
        "game/Assets/Resources/BackendConfig.asset",
        """\
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!114 &11400000
MonoBehaviour:
  m_ObjectHideFlags: 0
  m_Script: {fileID: 11500000, guid: 9a2c7e41b0d84f6e8c3a15d2e7f09b64, type: 3}
  m_Name: BackendConfig
  playFabTitleId: 7F3A2
  playFabDeveloperSecretKey: {V}
  useStaging: 0
""",
        "t14_playfab",
        True,
    ),
    (
        "game/Assets/Resources/BackendConfig.Release.asset",
        """\
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!114 &11400000
MonoBehaviour:
  m_Script: {fileID: 11500000, guid: 9a2c7e41b0d84f6e8c3a15d2e7f09b64, type: 3}
  m_Name: BackendConfig
  playFabTitleId: {V}
  playFabDeveloperSecretKey:
  useStaging: 0
""",
        "t14_title_id",
        False,
    ),
    (
        "game/Assets/Scripts/Backend/NakamaConnector.cs",
        """\
using Nakama;
using UnityEngine;

public class NakamaConnector : MonoBehaviour
{
    private const string Scheme = "https";
    private const string Host = "nakama.cinderfall.games";
    private const int Port = 7350;
    private const string ServerKey = "{V}";

    private IClient _client;

    private void Awake()
    {
        _client = new Client(Scheme, Host, Port, ServerKey, UnityWebRequestAdapter.Instance);
    }
}
""",
        "t14_api_key",
        True,
    ),
    (
        "game/Assets/Scripts/Backend/SteamAuth.cs",
        """\
using System.Net.Http;

// Server-side ticket validation (dedicated server build only)
public static class SteamAuth
{
    private const string PublisherKey = "{V}";
    private const uint AppId = 2211470;

    public static string BuildUrl(string ticket) =>
        "https://partner.steam-api.com/ISteamUserAuth/AuthenticateUserTicket/v1/" +
        $"?key={PublisherKey}&appid={AppId}&ticket={ticket}";
}
""",
        "t14_steam_key",
        True,
    ),
    (
        "game/Assets/Scripts/Backend/SteamAuth.Server.cs",
        """\
using System;

public static partial class SteamAuth
{
    // Injected by the dedicated-server container; never shipped in client builds.
    private static readonly string PublisherKey =
        Environment.GetEnvironmentVariable("STEAM_PUBLISHER_KEY") ?? "{V}";
}
""",
        "t14_placeholder",
        False,
    ),
    (
        "game/Assets/Plugins/Android/google-services.json",
        """\
{
  "project_info": {
    "project_number": "418273645120",
    "project_id": "cinderfall-prod",
    "storage_bucket": "cinderfall-prod.appspot.com"
  },
  "client": [
    {
      "client_info": {
        "mobilesdk_app_id": "1:418273645120:android:3b9f2c4d1e0a7b68",
        "android_client_info": { "package_name": "games.halfmoon.cinderfall" }
      },
      "api_key": [ { "current_key": "{V}" } ]
    }
  ],
  "configuration_version": "1"
}
""",
        "t14_google",
        True,
    ),
    (
        "game/Assets/Plugins/Android/google-services.template.json",
        """\
{
  "project_info": {
    "project_number": "418273645120",
    "project_id": "cinderfall-prod"
  },
  "client": [
    {
      "client_info": {
        "mobilesdk_app_id": "{V}",
        "android_client_info": { "package_name": "games.halfmoon.cinderfall" }
      },
      "api_key": [ { "current_key": "${FIREBASE_ANDROID_API_KEY}" } ]
    }
  ]
}
""",
        "t14_firebase_app",
        False,
    ),
    (
        "game/Assets/Photon/PhotonUnityNetworking/Resources/PhotonServerSettings.asset",
        """\
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!114 &11400000
MonoBehaviour:
  m_Name: PhotonServerSettings
  AppSettings:
    AppIdRealtime: {V}
    AppIdChat:
    AppIdVoice: {V2}
    AppVersion: 1.8
    UseNameServer: 1
    FixedRegion: eu
  RunInBackground: 1
""",
        "t14_uuid_id",
        False,
    ),
    (
        "game/Assets/Editor/BuildSigning.cs",
        """\
using UnityEditor;

public static class BuildSigning
{
    [MenuItem("Build/Android Release")]
    public static void AndroidRelease()
    {
        PlayerSettings.Android.useCustomKeystore = true;
        PlayerSettings.Android.keystoreName = "Keystores/cinderfall.keystore";
        PlayerSettings.Android.keystorePass = "{V}";
        PlayerSettings.Android.keyaliasName = "cinderfall-release";
        PlayerSettings.Android.keyaliasPass = "{V}";
        BuildPipeline.BuildPlayer(EditorBuildSettings.scenes, "Builds/cinderfall.aab",
            BuildTarget.Android, BuildOptions.None);
    }
}
""",
        "t14_weak",
        True,
    ),
    (
        "game/Assets/Localization/ui_login.csv",
        """\
key,en,loc
login.password.label,Password,{V}
login.password.hint,At least 8 characters,{V2}
wifi.setup.title,Connect your controller,{V3}
""",
        "t14_i18n",
        False,
    ),
    (
        "game/Assets/StreamingAssets/AssetBundles/lobby.manifest",
        """\
ManifestFileVersion: 0
CRC: 2518834961
Hashes:
  AssetFileHash:
    serializedVersion: 2
    Hash: {V}
  TypeTreeHash:
    serializedVersion: 2
    Hash: {V2}
HashAppended: 0
""",
        "t14_hex32",
        False,
    ),
    (
        "unreal/Config/DefaultEngine.ini",
        """\
[/Script/EngineSettings.GameMapsSettings]
GameDefaultMap=/Game/Maps/MainMenu.MainMenu

[OnlineSubsystem]
DefaultPlatformService=EOS

[/Script/OnlineSubsystemEOS.EOSSettings]
CacheDir=CacheDir
bEnableOverlay=True
+Artifacts=(ArtifactName="Cinderfall",ClientId="xyza7891Qk3ePbVw0oZt5mFhRcL2d",ClientSecret="{V}",ProductId="b1e0c6a9d2f34e5b8c7a0f1e2d3c4b5a",SandboxId="p-9rw4ktz2yq8mxn5c3vjh",DeploymentId="c8d7e6f5a4b34c2d1e0f9a8b7c6d5e4f",EncryptionKey="{V2}")
""",
        "t14_eos_secret",
        True,
    ),
    (
        "unreal/Config/DefaultEngine.Shipping.ini",
        """\
[OnlineSubsystem]
DefaultPlatformService=EOS

[/Script/OnlineSubsystemEOS.EOSSettings]
; ClientSecret and EncryptionKey come from the build machine's EOS.ini overlay
+Artifacts=(ArtifactName="Cinderfall",ProductId="{V}",SandboxId="{V2}",DeploymentId="{V3}")
""",
        "t14_eos_id",
        False,
    ),
    (
        "unreal/Config/DefaultGame.ini",
        """\
[/Script/EngineSettings.GeneralProjectSettings]
ProjectID={V}
ProjectName=Cinderfall
CompanyName=Halfmoon Forge
ProjectVersion=1.8.2

[/Script/UnrealEd.ProjectPackagingSettings]
BuildConfiguration=PPBC_Shipping
bShareMaterialShaderCode=True
""",
        "t14_uuid_id",
        False,
    ),
    (
        "unreal/Config/DefaultCrypto.ini",
        """\
[/Script/CryptoKeys.CryptoKeysSettings]
EncryptionKey={V}
bEncryptPakIniFiles=True
bEncryptPakIndex=True
bEncryptUAssetFiles=False
bEnablePakSigning=True
SigningPublicExponent=AQAB
""",
        "t14_b64key",
        True,
    ),
    (
        "unreal/Config/DefaultEngine.Server.ini",
        """\
[/Script/Cinderfall.BackendSettings]
GameLiftFleetId={V}
AnalyticsEndpoint=https://collect.cinderfall.games/v2/events
+AllowedRegions=eu-central-1
+AllowedRegions=us-east-1
""",
        "t14_fleet",
        False,
    ),
    (
        "unreal/Config/Windows/WindowsEngine.ini",
        """\
[CrashReportClient]
bAgreeToCrashUpload=True
DataRouterUrl="https://submit.backtrace.io/halfmoon/{V}/crash_reporter"
CrashReportClientVersion=1.0
""",
        "t14_hex64",
        True,
    ),
    (
        "unreal/Source/Cinderfall/Private/Analytics/GameAnalyticsConfig.h",
        """\
#pragma once

namespace CinderfallAnalytics
{
    // GameAnalytics: game key is public, secret key signs event batches (HMAC).
    static const TCHAR* GameKey = TEXT(GA_GAME_KEY);  // defined in Cinderfall.Build.cs
    static const TCHAR* SecretKey = TEXT("{V}");
}
""",
        "t14_gamekey_secret",
        True,
    ),
    (
        "unreal/Source/Cinderfall/Private/Backend/PlayFabSetup.cpp",
        """\
#include "PlayFabSetup.h"
#include "PlayFabRuntimeSettings.h"

void FPlayFabSetup::Configure()
{
    UPlayFabRuntimeSettings* Settings = GetMutableDefault<UPlayFabRuntimeSettings>();
    Settings->TitleId = TEXT("7F3A2");
#if UE_SERVER
    Settings->DeveloperSecretKey = TEXT("{V}");
#endif
}
""",
        "t14_playfab",
        True,
    ),
    (
        "unreal/Source/Cinderfall/Private/Backend/PlayFabSetup.Release.cpp",
        """\
#include "PlayFabSetup.h"
#include "PlayFabRuntimeSettings.h"

void FPlayFabSetup::Configure()
{
    UPlayFabRuntimeSettings* Settings = GetMutableDefault<UPlayFabRuntimeSettings>();
    Settings->TitleId = TEXT("{V}");
#if UE_SERVER
    Settings->DeveloperSecretKey = FPlatformMisc::GetEnvironmentVariable(TEXT("PLAYFAB_SECRET"));
#endif
}
""",
        "t14_title_id",
        False,
    ),
    (
        "unreal/Build/Keys/pak_signing.pem",
        """\
{V}
""",
        "t14_rsa",
        True,
    ),
    (
        "game/server/nakama/local.yml",
        """\
name: nakama-cinderfall
logger:
  level: INFO
console:
  port: 7351
  username: admin
  password: "{V}"
  signing_key: "{V2}"
session:
  encryption_key: "{V3}"
  refresh_encryption_key: "{V4}"
socket:
  server_key: "{V5}"
""",
        "t14_api_key",
        True,
    ),
    (
        "game/server/nakama/data/modules/rewards.lua",
        """\
local nk = require("nakama")

-- Webhook to the store backend; the shared secret signs the payload
local STORE_WEBHOOK = "https://store.cinderfall.games/hooks/grant"
local STORE_SECRET = "{V}"

local function grant(context, payload)
  local sig = nk.hmac_sha256_hash(STORE_SECRET, payload)
  nk.http_request(STORE_WEBHOOK, "POST", { ["X-Signature"] = nk.base16_encode(sig) }, payload)
end

nk.register_rpc(grant, "grant_reward")
""",
        "t14_hex32",
        True,
    ),
    (
        "game/server/nakama/data/modules/config.lua",
        """\
local M = {}

M.store_webhook = "https://store.cinderfall.games/hooks/grant"
M.store_secret = {V}
M.max_party_size = 4

return M
""",
        "t14_script_ref",
        False,
    ),
    # ---------------------------------------------------------------- CI / perforce
    (
        "ci/Jenkinsfile",
        """\
pipeline {
    agent { label 'win-ue5' }
    environment {
        P4PORT = 'ssl:perforce.halfmoon.internal:1666'
        P4USER = 'buildfarm'
        P4PASSWD = '{V}'
        UE_ROOT = 'D:/UE_5.3'
    }
    stages {
        stage('Sync') {
            steps { bat 'p4 -c cinderfall-build sync //cinderfall/main/...' }
        }
        stage('Cook') {
            steps { bat '%UE_ROOT%/Engine/Build/BatchFiles/RunUAT.bat BuildCookRun -project=Cinderfall.uproject' }
        }
    }
}
""",
        "t14_password",
        True,
    ),
    (
        "ci/Jenkinsfile.steam",
        """\
pipeline {
    agent { label 'linux-steampipe' }
    stages {
        stage('Upload to Steam') {
            steps {
                withCredentials([usernamePassword(credentialsId: '{V}',
                        usernameVariable: 'STEAM_USER', passwordVariable: 'STEAM_PASS')]) {
                    sh 'steamcmd +login "$STEAM_USER" "$STEAM_PASS" +run_app_build app_build_2211470.vdf +quit'
                }
            }
        }
    }
}
""",
        "t14_uuid_id",
        False,
    ),
    (
        "ci/steam/upload.sh",
        """\
#!/usr/bin/env bash
set -euo pipefail
# Steam build account (Steam Guard is handled by the shared secret below)
STEAM_USER=halfmoon_builder
STEAM_PASS='{V}'
steamcmd +login "$STEAM_USER" "$STEAM_PASS" "$(python3 totp.py)" \\
    +run_app_build "$PWD/app_build_2211470.vdf" +quit
""",
        "t14_password",
        True,
    ),
    (
        "ci/steam/totp.py",
        """\
import base64
import hmac
import struct
import time

# Steam Guard mobile authenticator shared_secret for the build account
SHARED_SECRET = "{V}"
IDENTITY_SECRET = "{V2}"

CHARS = "23456789BCDFGHJKMNPQRTVWXY"


def code(ts: int | None = None) -> str:
    t = struct.pack(">Q", int((ts or time.time()) // 30))
    mac = hmac.new(base64.b64decode(SHARED_SECRET), t, "sha1").digest()
    off = mac[-1] & 0x0F
    n = struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF
    return "".join(CHARS[(n // 26**i) % 26] for i in range(5))
""",
        "t14_steam_guard",
        True,
    ),
    (
        "ci/steam/app_build_2211470.vdf",
        """\
"AppBuild"
{
    "AppID" "2211470"
    "Desc" "CI build {V}"
    "ContentRoot" "../../Builds/Windows/"
    "BuildOutput" "../../Builds/steam_output/"
    "Depots"
    {
        "2211471" "depot_build_2211471.vdf"
    }
}
""",
        "t14_changelist",
        False,
    ),
    (
        "ci/p4/.p4config",
        """\
P4PORT=ssl:perforce.halfmoon.internal:1666
P4USER=buildfarm
P4CLIENT=cinderfall-build-win01
P4PASSWD={V}
P4CHARSET=utf8
P4IGNORE=.p4ignore
""",
        "t14_password",
        True,
    ),
    (
        "ci/p4/.p4config.template",
        """\
P4PORT=ssl:perforce.halfmoon.internal:1666
P4USER=<your-p4-user>
P4CLIENT=<user>-cinderfall-main
P4PASSWD={V}
P4CHARSET=utf8
""",
        "t14_placeholder",
        False,
    ),
    (
        "ci/p4/p4tickets.txt",
        """\
ssl:perforce.halfmoon.internal:1666=buildfarm:{V}
ssl:perforce-edge.halfmoon.internal:1666=buildfarm:{V2}
""",
        "t14_p4ticket",
        True,
    ),
    (
        "ci/p4/triggers/validate_changelist.py",
        """\
#!/usr/bin/env python3
\"\"\"change-submit trigger: refuse changelists that touch Config/ without a ticket id.\"\"\"
import subprocess
import sys

P4 = ["p4", "-p", "ssl:perforce.halfmoon.internal:1666", "-u", "triggers"]
TRIGGER_PASSWORD = "{V}"


def main(change: str) -> int:
    subprocess.run([*P4, "login"], input=TRIGGER_PASSWORD.encode(), check=True)
    desc = subprocess.run([*P4, "describe", "-s", change], capture_output=True, text=True)
    return 0 if "JIRA-" in desc.stdout else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
""",
        "t14_password",
        True,
    ),
    (
        "ci/p4/triggers.txt",
        """\
Triggers:
\tvalidate-config change-submit //cinderfall/main/Config/... "python3 /p4/triggers/validate_changelist.py %change%"
\tnotify-discord change-commit //cinderfall/... "curl -s -X POST -H 'Content-Type: application/json' -d @/tmp/%change%.json {V}"
""",
        "t14_discord_webhook",
        True,
    ),
    (
        "ci/p4/checkpoint.log",
        """\
Perforce server checkpoint: /p4/1/checkpoints/checkpoint.{V}
Journal rotated at change {V2}
""",
        "t14_changelist",
        False,
    ),
    (
        ".gitlab-ci.yml",
        """\
stages: [build, deploy]

variables:
  UNITY_VERSION: "2022.3.21f1"
  GIT_DEPTH: "1"

build-android:
  stage: build
  image: unityci/editor:ubuntu-${UNITY_VERSION}-android-3
  script:
    - ./ci/unity-build.sh Android
  variables:
    ANDROID_KEYSTORE_PASS: "{V}"
    ANDROID_KEYALIAS_PASS: "{V2}"
""",
        "t14_password",
        True,
    ),
    (
        ".gitlab-ci.deploy.yml",
        """\
deploy-playfab:
  stage: deploy
  image: python:3.11-slim
  script:
    - pip install playfab
    - python tools/push_catalog.py --title 7F3A2 --secret "{V}"
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
""",
        "t14_ci_ref",
        False,
    ),
    (
        ".buildkite/pipeline.yml",
        """\
steps:
  - label: ":unreal: cook"
    command: ci/cook.sh
    agents:
      queue: ue5-win
    plugins:
      - docker-login#v2.1.0:
          username: buildfarm
          password-env: REGISTRY_PASSWORD
  - wait
  - label: ":steam: upload"
    command: ci/steam/upload.sh
    env:
      BUILDKITE_ARTIFACT_UPLOAD_DESTINATION: "s3://halfmoon-artifacts/$BUILDKITE_PIPELINE_SLUG/$BUILDKITE_BUILD_ID"
      BUILD_CACHE_KEY: "{V}"
""",
        "t14_build_id",
        False,
    ),
    (
        ".buildkite/hooks/environment",
        """\
#!/bin/bash
set -eu

export BUILDKITE_API_TOKEN="{V}"
export AWS_DEFAULT_REGION=eu-central-1
if [[ "$BUILDKITE_PIPELINE_SLUG" == "cinderfall-release" ]]; then
  export SIGNING_PROFILE=release
fi
""",
        "t14_buildkite",
        True,
    ),
    (
        "ci/agents/buildkite-agent.cfg",
        """\
token="{V}"
name="%hostname-%spawn"
tags="queue=ue5-win,os=windows"
build-path="D:/buildkite/builds"
hooks-path="D:/buildkite/hooks"
git-clean-flags="-ffdqx"
""",
        "t14_buildkite_agent",
        True,
    ),
    (
        "ci/gamelift/deploy_fleet.sh",
        """\
#!/usr/bin/env bash
set -euo pipefail
export AWS_ACCESS_KEY_ID={V}
export AWS_REGION=eu-central-1

aws gamelift upload-build --name "cinderfall-server-$1" --build-version "$1" \\
    --build-root Builds/LinuxServer --operating-system AMAZON_LINUX_2023
""",
        "t14_aws_id",
        True,
    ),
    (
        "ci/gamelift/.aws/credentials",
        """\
[default]
region = eu-central-1

[gamelift-deploy]
# key id is in 1Password (GameLift deploy)
aws_secret_access_key = {V}
""",
        "t14_aws_secret",
        True,
    ),
    (
        "ci/gamelift/README.md",
        """\
# GameLift deploys

Configure a profile first (values below are AWS's documentation examples):

```
aws configure --profile gamelift-deploy
AWS Access Key ID [None]: {V}
```
""",
        "t14_example_id",
        False,
    ),
    (
        "ci/unity-build.sh",
        """\
#!/usr/bin/env bash
set -euo pipefail
PLATFORM="$1"
unity-editor -batchmode -nographics -quit \\
    -username "ci@halfmoon.games" -password '{V}' -serial "$UNITY_SERIAL" \\
    -projectPath "$CI_PROJECT_DIR/game" \\
    -executeMethod BuildSigning.AndroidRelease \\
    -logFile -
""",
        "t14_password",
        True,
    ),
    (
        "ci/scripts/notify.sh",
        """\
#!/bin/sh
# Post build status to #builds
STATUS="$1"
curl -fsS -X POST -H 'Content-type: application/json' \\
  --data "{\\"text\\": \\"Cinderfall build $BUILDKITE_BUILD_NUMBER: $STATUS\\"}" \\
  "{V}"
""",
        "t14_slack_webhook",
        True,
    ),
    (
        "ci/scripts/mirror.sh",
        """\
#!/bin/sh
set -e
git clone --mirror https://oauth2:{V}@gitlab.halfmoon.games/tools/modkit.git /tmp/modkit.git
cd /tmp/modkit.git
git push --mirror https://github.com/halfmoon-forge/modkit.git
""",
        "t14_gitlab",
        True,
    ),
    (
        "ci/scripts/release_modkit.sh",
        """\
#!/bin/sh
set -e
export GITHUB_TOKEN={V}
gh release create "v$1" dist/modkit-*.zip --repo halfmoon-forge/modkit --notes-file CHANGELOG.md
""",
        "t14_github",
        True,
    ),
    (
        "tools/modkit/.npmrc",
        """\
registry=https://registry.npmjs.org/
@halfmoon:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
""",
        "t14_npm",
        True,
    ),
    (
        "tools/crash/sentry.properties",
        """\
defaults.url=https://sentry.io/
defaults.org=halfmoon-forge
defaults.project=cinderfall
auth.token={V}
cli.executable=node_modules/@sentry/cli/bin/sentry-cli
""",
        "t14_sentry_token",
        True,
    ),
    (
        "tools/crash/upload_symbols.ps1",
        """\
param([string]$BuildDir)
$ErrorActionPreference = "Stop"
# Backtrace symbol upload token (write-only, per project)
$token = "{V}"
Compress-Archive -Path "$BuildDir/*.pdb" -DestinationPath symbols.zip -Force
Invoke-RestMethod -Method Post -InFile symbols.zip `
    -Uri "https://submit.backtrace.io/halfmoon/$token/symbols"
""",
        "t14_hex64",
        True,
    ),
    (
        "tools/crash/symbols.manifest",
        """\
# module                        debug-id
Cinderfall-Win64-Shipping.pdb  {V}
EOSSDK-Win64-Shipping.pdb      {V2}
""",
        "t14_hex32",
        False,
    ),
    # ---------------------------------------------------------------- community / scripts / docs
    (
        "community/discord-bot/.env",
        """\
DISCORD_TOKEN={V}
DISCORD_GUILD_ID=1093847561029384756
LOG_LEVEL=info
""",
        "t14_discord_bot",
        True,
    ),
    (
        "community/discord-bot/.env.example",
        """\
DISCORD_TOKEN={V}
DISCORD_GUILD_ID=
LOG_LEVEL=info
""",
        "t14_placeholder",
        False,
    ),
    (
        "community/discord-bot/config.json",
        """\
{
  "applicationId": "{V}",
  "guildId": "{V2}",
  "modLogChannel": "{V3}",
  "prefix": "!"
}
""",
        "t14_snowflake",
        False,
    ),
    (
        "community/discord-bot/interactions/verify.js",
        """\
const nacl = require('tweetnacl');

// Application public key from the developer portal (used to verify interaction signatures)
const PUBLIC_KEY = '{V}';

module.exports = function verify(req) {
  const sig = req.get('X-Signature-Ed25519');
  const ts = req.get('X-Signature-Timestamp');
  return nacl.sign.detached.verify(
    Buffer.from(ts + req.rawBody),
    Buffer.from(sig, 'hex'),
    Buffer.from(PUBLIC_KEY, 'hex'),
  );
};
""",
        "t14_discord_pubkey",
        False,
    ),
    (
        "community/discord-bot/bot.py",
        """\
import discord
from discord.ext import commands

intents = discord.Intents.default()
intents.message_content = True
bot = commands.Bot(command_prefix="!", intents=intents)


@bot.command()
async def patchnotes(ctx: commands.Context) -> None:
    await ctx.send("https://cinderfall.games/patch-notes")


if __name__ == "__main__":
    bot.run("{V}")
""",
        "t14_discord_bot",
        True,
    ),
    (
        "community/discord-bot/src/relay.ts",
        """\
import { WebhookClient } from 'discord.js';

// Mirrors in-game bug reports into #bug-reports
const hook = new WebhookClient({ url: '{V}' });

export async function relay(title: string, body: string): Promise<void> {
  await hook.send({ content: `**${title}**\\n${body}` });
}
""",
        "t14_discord_webhook",
        True,
    ),
    (
        "community/discord-bot/src/twitch.ts",
        """\
export const twitch = {
  clientId: 'w3q9k1mzt0h8c2x7v5b4n6r1a0s9d2',
  clientSecret: '{V}',
  channel: 'halfmoonforge',
};
""",
        "t14_api_key",
        True,
    ),
    (
        "community/telegram-notifier/notifier.lua",
        """\
local https = require("ssl.https")

local BOT_TOKEN = "{V}"
local CHAT_ID = "-1001847362519"

local function notify(text)
  return https.request("https://api.telegram.org/bot" .. BOT_TOKEN .. "/sendMessage",
    "chat_id=" .. CHAT_ID .. "&text=" .. text)
end

return { notify = notify }
""",
        "t14_telegram",
        True,
    ),
    (
        "game/godot/autoload/backend.gd",
        """\
extends Node

const NAKAMA_HOST := "nakama.cinderfall.games"
const NAKAMA_PORT := 7350
const NAKAMA_SERVER_KEY := "{V}"

var client: NakamaClient

func _ready() -> void:
\tclient = Nakama.create_client(NAKAMA_SERVER_KEY, NAKAMA_HOST, NAKAMA_PORT, "https")
""",
        "t14_weak",
        True,
    ),
    (
        "game/godot/autoload/backend_release.gd",
        """\
extends Node

const NAKAMA_HOST := "nakama.cinderfall.games"
var server_key: String = {V}

func _ready() -> void:
\tvar client := Nakama.create_client(server_key, NAKAMA_HOST, 7350, "https")
""",
        "t14_gd_ref",
        False,
    ),
    (
        "game/godot/tools/export_presets.cfg",
        """\
[preset.0]

name="Android"
platform="Android"
runnable=true
export_path="build/cinderfall.apk"

[preset.0.options]

keystore/release="res://keystores/release.keystore"
keystore/release_user="cinderfall"
keystore/release_password="{V}"
package/unique_name="games.halfmoon.cinderfall"
""",
        "t14_password",
        True,
    ),
    (
        "game/godot/ui/login_screen.gd",
        """\
extends Control

const MIN_PASSWORD_LENGTH := {V}

@onready var password_field: LineEdit = $Panel/Password

func _on_submit_pressed() -> void:
\tif password_field.text.length() < MIN_PASSWORD_LENGTH:
\t\t$Panel/Error.text = tr("LOGIN_PASSWORD_TOO_SHORT")
\t\treturn
\tBackend.login($Panel/Email.text, password_field.text)
""",
        "t14_rule",
        False,
    ),
    (
        "game/godot/tests/test_login.gd",
        """\
extends GutTest

func test_login_with_qa_account() -> void:
\tvar result = await Backend.login("qa+smoke@halfmoon.games", "{V}")
\tassert_true(result.ok, "qa smoke account must log in on staging")
""",
        "t14_password",
        True,
    ),
    (
        "mods/luaapi/examples/leaderboard.lua",
        """\
-- Example mod: post your best run to your own leaderboard server.
-- Set LEADERBOARD_KEY in mods/settings.ini; never hard-code it in a mod you share.
local key = {V}

Events.on("run_finished", function(run)
  Http.post("https://your-server.example/api/runs", { key = key, time = run.time })
end)
""",
        "t14_lua_ref",
        False,
    ),
    (
        "mods/luaapi/examples/rcon.lua",
        """\
-- Dedicated server admin helper used by the EU-1 community server
local rcon = require("cinderfall.rcon")

local conn = rcon.connect("eu1.cinderfall-community.net", 27015, "{V}")
conn:exec("say Server restarting in 5 minutes")
""",
        "t14_password",
        True,
    ),
    (
        "mods/dedicated-server/server.cfg",
        """\
hostname "Cinderfall Community EU-1"
sv_maxplayers 32
sv_password "{V}"
rcon_password "{V2}"
sv_region 3
sv_lan 0
""",
        "t14_weak",
        True,
    ),
    (
        "mods/dedicated-server/BEServer_x64.cfg",
        """\
RConPassword {V}
RConPort 2306
MaxPing 250
""",
        "t14_password",
        True,
    ),
    (
        "mods/dedicated-server/server.cfg.example",
        """\
hostname "My Cinderfall Server"
sv_maxplayers 16
sv_password "{V}"
rcon_password "{V2}"
""",
        "t14_placeholder",
        False,
    ),
    (
        "docs/modding/dedicated-server.md",
        """\
# Running a dedicated server

Start the server with an admin password of your own choosing:

```sh
./CinderfallServer.sh -port=7777 -rconpassword=<choose-one>
```

The password is read once at startup; it must be at least 8 characters.
The console prints a session nonce such as `{V}` when rcon connects; it is not a secret.
""",
        "t14_nonce",
        False,
    ),
    (
        "docs/modding/dedicated-server-hosting.md",
        """\
# Hosting notes (internal)

Our EU-1 box is reached as

    ssh modadmin@eu1.cinderfall-community.net

and the admin web panel at https://panel.cinderfall-community.net uses
user `modadmin`, password `{V}`.
""",
        "t14_password",
        True,
    ),
    (
        "docs/backend/analytics.md",
        """\
# Analytics SDK keys

| SDK            | Key                           | Where                         |
|----------------|-------------------------------|-------------------------------|
| GameAnalytics  | secret key `{V}` | `GameAnalyticsConfig.h`       |
| Amplitude      | server key `{V2}`  | `tools/export/amplitude.py`   |

Rotate both when someone leaves the analytics team.
""",
        "t14_gamekey_secret",
        True,
    ),
    (
        "docs/backend/analytics-ids.md",
        """\
# Analytics ids (safe to share)

- Firebase app id: `{V}`
- Android app id for the store build: `{V2}`

These identify the app; they grant no access on their own.
""",
        "t14_firebase_app",
        False,
    ),
    (
        "docs/backend/playfab.md",
        """\
# PlayFab

Title `7F3A2`. Server scripts authenticate with the header

    X-SecretKey: {V}

(this is the *staging* title's developer secret key; production lives in the vault).
""",
        "t14_playfab",
        True,
    ),
    (
        "docs/backend/playfab-public.md",
        """\
# PlayFab (for contributors)

Server scripts authenticate with the header

    X-SecretKey: {V}

Ask a backend lead for the real key; do not paste it into issues.
""",
        "t14_placeholder",
        False,
    ),
    (
        "docs/hardware/flashing.md",
        """\
# Flashing the scoreboard

Each board reports its MAC on first boot, e.g. `{V}`; add it to the DHCP
reservations before flashing. Firmware builds are identified by their short hash.
""",
        "t14_mac",
        False,
    ),
    (
        "docs/hardware/anti-cheat-kiosk.md",
        """\
# Anti-cheat on the showfloor cabinets

The cabinets run the EasyAntiCheat client in offline mode. Integrity is checked against the
catalogue hash `{V}` that ships with each cabinet build.
""",
        "t14_digest",
        False,
    ),
    (
        "tools/anticheat/eac_settings.json",
        """\
{
  "productid": "{V}",
  "sandboxid": "{V2}",
  "deploymentid": "{V3}",
  "title": "Cinderfall",
  "executable": "Cinderfall/Binaries/Win64/Cinderfall-Win64-Shipping.exe",
  "logo_position": "bottom-left"
}
""",
        "t14_eos_id",
        False,
    ),
    (
        "tools/anticheat/eac_server.ini",
        """\
[EasyAntiCheat]
ClientId=xyza7891Qk3ePbVw0oZt5mFhRcL2d
ClientSecret={V}
IntegrityToolPath=Tools/EAC/anticheat_integritytool64.exe
""",
        "t14_eos_secret",
        True,
    ),
    (
        "tools/export/amplitude.py",
        """\
import os

import requests

AMPLITUDE_API_KEY = os.environ["AMPLITUDE_API_KEY"]
AMPLITUDE_SECRET_KEY = "{V}"


def export(start: str, end: str) -> bytes:
    r = requests.get(
        "https://amplitude.com/api/2/export",
        params={"start": start, "end": end},
        auth=(AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY),
        timeout=120,
    )
    r.raise_for_status()
    return r.content
""",
        "t14_hex32",
        True,
    ),
    (
        "tools/export/secrets.enc.yaml",
        """\
amplitude:
    secret_key: {V}
playfab:
    developer_secret: {V2}
sops:
    kms:
        - arn: arn:aws:kms:eu-central-1:301948572610:key/3f2a9c1e-7b4d-4e8a-9c6f-1d2e3b4a5c6d
    lastmodified: "2024-05-14T09:12:44Z"
    version: 3.8.1
""",
        "t14_sops",
        False,
    ),
    (
        "tools/ansible/group_vars/lab/vault.yml",
        """\
{V}
""",
        "t14_vault",
        False,
    ),
    (
        "tools/ansible/group_vars/lab/vars.yml",
        """\
mosquitto_users:
  - name: nodered
    password: "{V}"
  - name: scoreboard
    password: "{V2}"
mosquitto_listener_port: 1883
""",
        "t14_url_pass",
        True,
    ),
    (
        "tools/ansible/roles/kiosk/files/id_ed25519",
        """\
{V}
""",
        "t14_openssh",
        True,
    ),
    (
        "tools/ansible/roles/kiosk/files/backend_client.key",
        """\
{V}
""",
        "t14_ec",
        True,
    ),
]
