"""Tuning part ``tune20``: Halvorsen Hosting (HHX), a fictional hosting company that racks its own
bare-metal fleet in three colocation halls and runs private clouds (vSphere, Proxmox VE,
OpenStack) next to AWS and Azure tenants. Files are its infrastructure provisioning and
configuration management: kickstart and Debian preseed files, Windows ``autounattend.xml``,
cloud-init user-data/meta-data/network-config, Packer HCL and JSON templates with their var files,
Vagrantfiles and their provisioning scripts, Terraform (tfvars, providers for vSphere, Proxmox,
OpenStack, libvirt, AWS and Azure, backends), Ansible (INI and YAML inventories, group_vars and
host_vars, role defaults, playbooks, vault files), Salt pillars and states, Puppet Hiera data and
manifests, Chef attributes, recipes and data bags, PXE/iPXE menus and GRUB configs, IPMI, iDRAC
and iLO scripts (bash, Python, PowerShell, Redfish calls), FreeIPA/LDAP bootstrap scripts and
LDIF, Proxmox/LXC configs, OpenStack ``clouds.yaml`` and openrc files, Ceph keyrings, BIND TSIG
keys, WireGuard configs, k3s/kubeadm joins, install guides and runbooks in Markdown (English,
German, French, Spanish), Slack exports, Jupyter notebooks, and CI that builds images (GitHub
Actions, GitLab CI, Jenkins, Makefiles, Dockerfiles). Written blind (without seeing the scanner,
its rules or other parts' templates).

Look-alikes sit in the same files under the same key names: crypted root passwords (SHA-512 and
yescrypt ``crypt`` strings, GRUB PBKDF2 hashes), values encrypted at rest (Ansible Vault, hiera-eyaml
``ENC[PKCS7,...]``, SOPS, encrypted Chef data bags), references to variables and secret stores in
every tool (Jinja, ERB, HCL, Salt pillar lookups, Hiera interpolation, CI variables, shell and
PowerShell environment, Packer ``vault()`` calls), placeholders and redactions, public material
(SSH public keys and host key fingerprints, certificates, WireGuard public keys, GPG keys),
identifiers shaped like secrets (VM and SMBIOS UUIDs, MAC addresses, ISO checksums, provider lock
hashes, machine-ids, OpenStack project ids, AMI ids, Dell service tags, iSCSI IQNs, data-centre
access-badge numbers), Microsoft's published KMS client setup keys, installer UI text in several
languages, documented factory defaults and example credentials, credentials on documentation
hosts, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import string
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
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%^*-_=+.@"


class Tune20Values(evalset.Values):
    """Value generators of the tune20 part; every name starts with ``t20_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "bastion",
            "rackmount",
            "hypervisor",
            "bootstrap",
            "failover",
            "netboot",
            "kernel",
            "spindle",
            "uplink",
            "chassis",
            "firmware",
            "blade",
            "coldaisle",
            "patchpanel",
        ]
        self.users = [
            "provision",
            "ansible",
            "packer",
            "terraform",
            "netbox",
            "ipmiadmin",
            "salt",
            "puppet",
            "deploy",
            "hhx-ops",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t20_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t20_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t20_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t20_util_aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def t20_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def t20_pw(self) -> str:
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
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Hx" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "$" + self.s(4, DIGITS)

    def t20_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password1!",
                    "Halvorsen1",
                    "hhx2023",
                    "rootroot1",
                    "Server2019!",
                    "Rack123!",
                ]
            )
        if shape == 1:
            return "Halvorsen" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return (
            self.pick(["Summer", "Winter", "Spring", "Autumn"])
            + str(self.rng.randrange(2019, 2026))
            + "!"
        )

    def t20_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def t20_unattend_b64(self) -> str:
        """autounattend.xml ``PlainText=false``: base64 of UTF-16LE (password + element name)."""
        suffix = self.pick(["Password", "AdministratorPassword"])
        return base64.b64encode((self.t20_pw() + suffix).encode("utf-16-le")).decode()

    def t20_basic_b64(self) -> str:
        user = self.pick(self.users)
        return base64.b64encode(f"{user}:{self.t20_pw()}".encode()).decode()

    def t20_snmp_comm(self) -> str:
        return self.pick(["hhx", "noc", "mon", "rack"]) + "-" + self.s(14, ALNUM)

    # ------------------------------------------------------------------ positives: tokens/keys
    def t20_github(self) -> str:
        return self.t20_util_crc_token(self.pick(["ghp", "ghp", "ghs"]))

    def t20_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t20_glrt(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def t20_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def t20_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.t20_util_aws_id()}\n"
            f"aws_secret_access_key = {self.t20_util_aws_secret()}"
        )

    def t20_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.t20_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY={self.t20_util_aws_secret()}"
        )

    def t20_aws_hcl_pair(self) -> str:
        return (
            f'access_key = "{self.t20_util_aws_id()}"\nsecret_key = "{self.t20_util_aws_secret()}"'
        )

    def t20_azure_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t20_azure_storage(self) -> str:
        return self.t20_util_b64(64)

    def t20_vault_token(self) -> str:
        return "hvs.CAESI" + self.s(self.rng.choice([86, 90]), URLSAFE)

    def t20_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def t20_do_token(self) -> str:
        return "dop_v1_" + self.s(64, HEX)

    def t20_hcloud_token(self) -> str:
        return self.s(64, ALNUM)

    def t20_cf_token(self) -> str:
        return self.s(40, URLSAFE)

    def t20_pd_key(self) -> str:
        return self.s(32, HEX)

    def t20_dd_key(self) -> str:
        return self.s(32, HEX)

    def t20_netbox_token(self) -> str:
        return self.s(40, HEX)

    def t20_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"

    def t20_discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 10**19)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, URLSAFE)}"

    def t20_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t20_proxmox_secret(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t20_consul_token(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t20_k3s_token(self) -> str:
        return f"K10{self.s(64, HEX)}::server:{self.s(32, HEX)}"

    def t20_kubeadm_token(self) -> str:
        return f"{self.s(6, LOWNUM)}.{self.s(16, LOWNUM)}"

    def t20_tskey(self) -> str:
        return f"tskey-auth-k{self.s(10, ALNUM)}CNTRL-{self.s(33, ALNUM)}"

    def t20_rancher_token(self) -> str:
        return f"token-{self.s(5, LOWNUM)}:{self.s(54, LOWNUM)}"

    def t20_hex_secret(self) -> str:
        return self.s(64, HEX)

    def t20_b64_secret(self) -> str:
        return self.t20_util_b64(32)

    def t20_tsig_secret(self) -> str:
        return self.t20_util_b64(self.pick([32, 64]))

    def t20_ceph_key(self) -> str:
        header = b"\x01\x00" + self.rng.randbytes(8) + b"\x10\x00"
        return base64.b64encode(header + self.rng.randbytes(16)).decode()

    def t20_wg_priv(self) -> str:
        return self.t20_util_b64(32)

    def t20_fernet_key(self) -> str:
        return self.t20_util_b64(32, urlsafe=True)

    def t20_fernet_token(self) -> str:
        return "gAAAAAB" + self.t20_util_b64(self.rng.randrange(150, 190), urlsafe=True, pad=False)

    def t20_rsa_key(self) -> str:
        return self.t20_util_armor(
            "RSA PRIVATE KEY", b"\x30\x82\x04\xa4\x02\x01\x00" + self.rng.randbytes(600)
        )

    def t20_ec_key(self) -> str:
        return self.t20_util_armor(
            "EC PRIVATE KEY", b"\x30\x77\x02\x01\x01\x04\x20" + self.rng.randbytes(112)
        )

    def t20_ssh_key(self) -> str:
        body = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
            b"\x00\x00\x003\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(200)
        )
        return self.t20_util_armor("OPENSSH PRIVATE KEY", body, 70)

    def t20_gcp_sa_key(self) -> str:
        pem = self.t20_util_armor(
            "PRIVATE KEY", b"\x30\x82\x04\xbd\x02\x01\x00" + self.rng.randbytes(640)
        )
        return pem.replace("\n", "\\n") + "\\n"

    def t20_chef_key(self) -> str:
        return self.t20_util_armor(
            "RSA PRIVATE KEY", b"\x30\x82\x04\xa3\x02\x01\x00" + self.rng.randbytes(560)
        )

    # ------------------------------------------------------------------ negatives
    def t20_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t20_yescrypt(self) -> str:
        return f"$y$j9T${self.s(22, CRYPT64)}${self.s(43, CRYPT64)}"

    def t20_crypt_any(self) -> str:
        if self.rng.randrange(2):
            return self.t20_sha512crypt()
        return self.t20_yescrypt()

    def t20_grub_hash(self) -> str:
        return f"grub.pbkdf2.sha512.10000.{self.s(128, HEXU)}.{self.s(128, HEXU)}"

    def t20_eyaml(self) -> str:
        return "ENC[PKCS7," + self.t20_util_b64(self.rng.choice([300, 330, 360])) + "]"

    def t20_vault_blob(self) -> str:
        body = self.s(80 * self.rng.randrange(4, 8), HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t20_sops(self) -> str:
        data = self.t20_util_b64(self.rng.randrange(12, 40))
        iv = self.t20_util_b64(32)
        tag = self.t20_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def t20_chef_enc(self) -> str:
        return self.t20_util_b64(self.rng.choice([32, 48, 64]))

    def t20_ans_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_root_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/ipmi:password') }}",
                "{{ hostvars[inventory_hostname].bmc_password }}",
                "{{ lookup('env', 'VSPHERE_PASSWORD') }}",
                "{{ vault_ldap_bind_pw | default(omit) }}",
                "{{ lookup('ansible.builtin.password', '/dev/null length=24 chars=ascii_letters,digits') }}",
                "{{ lookup('community.general.onepassword', 'idrac-root', field='password') }}",
            ]
        )

    def t20_tf_ref(self) -> str:
        return self.pick(
            [
                "var.vsphere_password",
                'data.vault_generic_secret.pve.data["token_secret"]',
                "random_password.root.result",
                "azurerm_key_vault_secret.sp.value",
                "local.openstack_password",
                "data.aws_ssm_parameter.ipmi.value",
                "sensitive(var.proxmox_api_token_secret)",
            ]
        )

    def t20_sh_ref(self) -> str:
        return self.pick(
            [
                "${IPMI_PASSWORD}",
                '"$(vault kv get -field=password kv/bmc/root)"',
                '"$(cat /run/secrets/root_pw)"',
                "${OS_PASSWORD:?set OS_PASSWORD}",
                '"$(pass show hhx/idrac/root)"',
                '"$(op read op://Infra/vsphere/password)"',
                '"${LDAP_BIND_PW}"',
            ]
        )

    def t20_salt_ref(self) -> str:
        return self.pick(
            [
                "{{ pillar['mysql']['root_password'] }}",
                "{{ salt['pillar.get']('ipmi:password') }}",
                "{{ salt['vault'].read_secret('kv/data/ldap', 'bind_pw') }}",
                "{{ salt['grains.get']('bmc_password', '') }}",
            ]
        )

    def t20_puppet_ref(self) -> str:
        return self.pick(
            [
                "%{hiera('profile::ldap::bind_password')}",
                "%{lookup('profile::bmc::password')}",
                "%{alias('vault_root_pw')}",
                "${facts['bmc_password']}",
                "Sensitive(lookup('profile::db::password'))",
            ]
        )

    def t20_chef_ref(self) -> str:
        return self.pick(
            [
                "node['hhx']['ipmi']['password']",
                "data_bag_item('passwords', 'ipmi', secret)['password']",
                "chef_vault_item('infra', 'ldap')['bind_pw']",
                "ENV['CHEF_LDAP_PW']",
                "Chef::EncryptedDataBagItem.load('infra', 'bmc')['password']",
            ]
        )

    def t20_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.VSPHERE_PASSWORD }}",
                "$VSPHERE_PASSWORD",
                "${{ secrets.PKR_VAR_winrm_password }}",
                "$(PACKER_VSPHERE_PASSWORD)",
                "${env.VSPHERE_PASSWORD}",
                "$CI_JOB_TOKEN",
            ]
        )

    def t20_packer_ref(self) -> str:
        return self.pick(
            [
                'vault("/kv/data/packer/vsphere", "password")',
                'env("PKR_VAR_ssh_password")',
                "var.winrm_password",
                'aws_secretsmanager("packer/winrm", "password")',
                "{{ user `ssh_password` }}",
                "{{ env `VSPHERE_PASSWORD` }}",
            ]
        )

    def t20_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:IDRAC_PASSWORD",
                "(Get-Secret -Name iDRACRoot -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Read-Host -AsSecureString 'iLO password')",
                "(Get-AzKeyVaultSecret -VaultName kv-hhx-infra -Name ilo-admin -AsPlainText)",
            ]
        )

    def t20_placeholder(self) -> str:
        return self.pick(
            [
                "CHANGEME",
                "<root-password>",
                "********",
                "REPLACE_WITH_BMC_PASSWORD",
                "__ROOT_PASSWORD__",
                "<your-api-token>",
                "xxxxxxxxxxxxxxxx",
                "TBD",
                "@@IPMI_PASSWORD@@",
                "<set-in-vault>",
            ]
        )

    def t20_redacted(self) -> str:
        return self.pick(
            ["[REDACTED]", "<redacted>", "***", "(removed, see 1Password)", "[hidden]", "•••••••••"]
        )

    def t20_ssh_pub(self) -> str:
        if self.rng.randrange(2):
            body = base64.b64encode(
                b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
            ).decode()
            return f"ssh-ed25519 {body} {self.pick(self.users)}@hhx"
        body = base64.b64encode(
            b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01\x00\x00\x01\x01\x00"
            + self.rng.randbytes(256)
        ).decode()
        return f"ssh-rsa {body} {self.pick(self.users)}@hhx"

    def t20_cert(self) -> str:
        return self.t20_util_armor(
            "CERTIFICATE", b"\x30\x82\x03\x5d\x30\x82\x02\x45\xa0\x03" + self.rng.randbytes(560)
        )

    def t20_pubkey_pem(self) -> str:
        return self.t20_util_armor(
            "PUBLIC KEY", b"\x30\x82\x01\x22\x30\x0d\x06\x09" + self.rng.randbytes(280)
        )

    def t20_fpr(self) -> str:
        return "SHA256:" + self.t20_util_b64(32, pad=False)

    def t20_wg_pub(self) -> str:
        return self.t20_util_b64(32)

    def t20_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t20_smbios_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()

    def t20_mac(self) -> str:
        return ":".join(self.s(2, HEX) for _ in range(6))

    def t20_iso_sum(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t20_tf_lock(self) -> str:
        return "h1:" + self.t20_util_b64(32)

    def t20_gpg_fpr(self) -> str:
        return self.s(40, HEXU)

    def t20_machine_id(self) -> str:
        return self.s(32, HEX)

    def t20_os_id(self) -> str:
        return self.s(32, HEX)

    def t20_ami(self) -> str:
        return "ami-" + self.s(17, HEX)

    def t20_service_tag(self) -> str:
        return self.s(7, "BCDFGHJKLMNPQRSTVWXYZ0123456789")

    def t20_iqn(self) -> str:
        return f"iqn.2019-04.net.halvorsen-hx:{self.pick(['san01', 'san02', 'nvme-a'])}.lun{self.rng.randrange(1, 40)}"

    def t20_badge(self) -> str:
        return self.pick(["HX", "CL", "DC"]) + self.s(2, DIGITS) + "-" + self.s(10, DIGITS)

    def t20_gvlk(self) -> str:
        """Microsoft's published KMS client setup keys (GVLKs), public by design."""
        return self.pick(
            [
                "N69G4-B89J2-4G8F4-WWYCC-J464C",
                "WMDGN-G9PQG-XVVXX-R3X43-63DFG",
                "VDYBN-27WPP-V4HQT-9VMD4-VMK7H",
                "WX4NM-KYWYW-QJJR4-XV3QB-6VM33",
                "W269N-WFGWX-YVC9B-4J6C9-T83GX",
            ]
        )

    def t20_i18n(self) -> str:
        return self.pick(
            [
                "Root-Passwort festlegen",
                "Mot de passe de l'administrateur",
                "Contraseña del superusuario",
                "Passwort für den BMC-Benutzer eingeben",
                "Saisissez à nouveau le mot de passe",
                "Las contraseñas no coinciden",
                "rootパスワードを設定してください",
                "Пароль администратора",
            ]
        )

    def t20_doc_uri(self) -> str:
        user = self.pick(["admin", "provision", "user"])
        host = self.pick(
            ["db.example.com", "bmc.example.net", "ldap.example.org", "pve.test", "vc.invalid"]
        )
        scheme = self.pick(["postgresql", "mysql", "ldaps", "https", "amqp"])
        return f"{scheme}://{user}:{self.pick(['secret', 'password', 'hunter2', 's3cr3t'])}@{host}"

    def t20_aws_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AKIAI44QH8DHBEXAMPLE",
                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def t20_factory_default(self) -> str:
        return self.pick(["calvin", "ADMIN", "vagrant", "admin", "changeme", "password"])

    def t20_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-token",
                "dummy-secret-do-not-use",
                "test-only-not-secret",
                "FAKE_TOKEN_0000000000",
                "testpass-not-real",
            ]
        )

    def t20_secret_path(self) -> str:
        return self.pick(
            [
                "/etc/hhx/bmc.pass",
                "/root/.ipmi_password",
                "/run/secrets/vsphere_password",
                "~/.config/hhx/pve-token",
                "/etc/ceph/ceph.client.admin.keyring",
                "files/ipa-admin.pw.gpg",
            ]
        )

    def t20_policy(self) -> str:
        return self.pick(["90", "14", "3600", "12", "365", "24"])

    def t20_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-hhx-infra.vault.azure.net/secrets/tfstate-key/)",
                "op://Infra/tfstate-weu/access-key",
                "vault:kv/data/azure/tfstate#access_key",
                "az keyvault secret show --vault-name kv-hhx-infra -n tfstate-key",
            ]
        )

    def t20_pbkdf2_ldap(self) -> str:
        raw = "{PBKDF2_SHA256}AAAIA" + self.t20_util_b64(240)
        return base64.b64encode(raw.encode()).decode()

    def t20_ssha(self) -> str:
        return "{SSHA}" + self.t20_util_b64(24)

    def t20_pbs_fpr(self) -> str:
        return ":".join(self.s(2, HEX) for _ in range(32))

    def t20_app_cred(self) -> str:
        return self.s(86, URLSAFE)

    def t20_env_py(self) -> str:
        return self.pick(
            [
                'os.environ["NETBOX_TOKEN"]',
                'os.getenv("NETBOX_TOKEN")',
                "settings.NETBOX_TOKEN",
                'hvac.Client().secrets.kv.read_secret_version(path="netbox")["data"]["data"]["token"]',
                'keyring.get_password("netbox", "provision")',
            ]
        )

    def t20_secret_name(self) -> str:
        return self.pick(
            ["netbox-postgres", "pg-netbox-credentials", "netbox-db-auth", "externaldb-secret"]
        )

    def t20_dd_dash(self) -> str:
        return f"{self.s(3, LOWNUM)}-{self.s(3, LOWNUM)}-{self.s(3, LOWNUM)}"

    def t20_env_nb(self) -> str:
        return self.pick(
            [
                'os.environ[\\"BMC_PASSWORD\\"]',
                'getpass.getpass(\\"BMC password: \\")',
                'keyring.get_password(\\"bmc\\", \\"hhx-monitor\\")',
            ]
        )

    def t20_imgtrust(self) -> str:
        return self.s(40, HEX)


VALUES = Tune20Values

Template = evalset.Template


def _t(path: str, text: str, kind: str, positive: bool) -> Template:
    return (path, text.lstrip("\n"), kind, positive)


TEMPLATES: list[Template] = []
# ---------------------------------------------------------------- kickstart / preseed / unattend
TEMPLATES += [
    _t(
        "provisioning/kickstart/rocky9-hypervisor.ks",
        """
# Rocky Linux 9 kickstart for KVM hypervisors (hall B, rack 14-22)
# served from http://pxe01.mgmt.hhx.net/ks/rocky9-hypervisor.ks
text
url --url=http://mirror.mgmt.hhx.net/rocky/9/BaseOS/x86_64/os/
lang en_US.UTF-8
keyboard --vckeymap=de-nodeadkeys --xlayouts='de (nodeadkeys)'
timezone Europe/Berlin --utc
network --bootproto=dhcp --device=link --activate --hostname=hv-new.mgmt.hhx.net
rootpw --plaintext {V}
user --name=provision --groups=wheel --password={V2} --plaintext
firewall --enabled --service=ssh
selinux --enforcing
bootloader --location=mbr --append="crashkernel=auto console=ttyS1,115200n8"
zerombr
clearpart --all --initlabel --drives=sda
autopart --type=lvm
reboot

%packages
@^minimal-environment
qemu-kvm
libvirt
%end
""",
        "t20_pw",
        True,
    ),
    _t(
        "provisioning/kickstart/rhel8-storage.ks",
        """
#version=RHEL8
# Storage nodes (Ceph OSD hosts), generated by ks-render.py -- do not edit by hand
text
cdrom
lang en_US.UTF-8
keyboard us
timezone UTC --utc
network --bootproto=static --ip=10.40.12.31 --netmask=255.255.255.0 --gateway=10.40.12.1 --nameserver=10.40.0.53
rootpw --iscrypted {V}
user --name=ansible --groups=wheel --iscrypted --password={V2}
sshkey --username=ansible "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ansible@bastion01"
services --enabled=sshd,chronyd
bootloader --location=mbr
clearpart --all --initlabel
part /boot --fstype=xfs --size=1024
part pv.01 --size=1 --grow
volgroup vg_root pv.01
logvol / --vgname=vg_root --name=root --fstype=xfs --size=40960
poweroff
""",
        "t20_crypt_any",
        False,
    ),
    _t(
        "provisioning/kickstart/alma9-edge.ks",
        """
# AlmaLinux 9 edge cache nodes
# root is locked; the provision user gets a one-time password that firstboot rotates
url --mirrorlist=https://mirrors.almalinux.org/mirrorlist/9/baseos
lang en_GB.UTF-8
keyboard uk
timezone Europe/London
rootpw --lock
user --name=provision --groups=wheel --password={V} --plaintext
network --bootproto=dhcp --hostname=edge-cache.hhx.net
firstboot --disable
skipx
zerombr
clearpart --all
autopart
%post --log=/root/ks-post.log
echo 'provision ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/provision
chage -d 0 provision
%end
""",
        "t20_weak_pw",
        True,
    ),
    _t(
        "provisioning/kickstart/templates/base.ks.j2",
        """
# Jinja2 source of every kickstart we serve; rendered by ks-render.py with values from vault
text
url --url={{ mirror_url }}/BaseOS/x86_64/os/
lang {{ locale | default('en_US.UTF-8') }}
timezone {{ timezone | default('UTC') }} --utc
network --bootproto=dhcp --hostname={{ inventory_hostname }}
rootpw --plaintext {V}
user --name=provision --groups=wheel --password={V2} --plaintext
bootloader --location=mbr --append="{{ kernel_args }}"
zerombr
clearpart --all --initlabel
autopart --type=lvm
reboot
""",
        "t20_ans_ref",
        False,
    ),
    _t(
        "provisioning/preseed/debian12-web.cfg",
        """
### Debian 12 preseed for shared web hosting nodes
d-i debian-installer/locale string en_US.UTF-8
d-i keyboard-configuration/xkb-keymap select de
d-i netcfg/choose_interface select auto
d-i netcfg/get_hostname string web-new
d-i netcfg/get_domain string hosting.hhx.net
d-i mirror/country string manual
d-i mirror/http/hostname string mirror.mgmt.hhx.net
d-i mirror/http/directory string /debian

### Account setup
d-i passwd/root-login boolean true
d-i passwd/root-password password {V}
d-i passwd/root-password-again password {V}
d-i passwd/user-fullname string Provisioning
d-i passwd/username string provision
d-i passwd/user-password password {V2}
d-i passwd/user-password-again password {V2}

d-i clock-setup/utc boolean true
d-i time/zone string Europe/Berlin
d-i partman-auto/method string lvm
d-i partman-auto/choose_recipe select atomic
""",
        "t20_pw",
        True,
    ),
    _t(
        "provisioning/preseed/ubuntu2204-bmaas.cfg",
        """
# Ubuntu 22.04 bare-metal-as-a-service preseed (legacy d-i path, kept for old iDRAC 8 boxes)
d-i debian-installer/locale string en_US
d-i netcfg/choose_interface select auto
d-i passwd/root-login boolean false
d-i passwd/user-fullname string HHX Provisioning
d-i passwd/username string provision
d-i passwd/user-password-crypted password {V}
d-i user-setup/encrypt-home boolean false
d-i clock-setup/ntp-server string ntp.mgmt.hhx.net
d-i grub-installer/only_debian boolean true
d-i grub-installer/password-crypted password {V2}
d-i finish-install/reboot_in_progress note
d-i preseed/late_command string in-target systemctl enable ssh
""",
        "t20_sha512crypt",
        False,
    ),
    _t(
        "provisioning/preseed/debian11-dns.cfg",
        """
# preseed for the anycast DNS boxes (ns1-ns4)
d-i debian-installer/language string en
d-i debian-installer/country string DE
d-i netcfg/get_hostname string ns-new
d-i netcfg/get_domain string dns.hhx.net
d-i passwd/root-password password {V}
d-i passwd/root-password-again password {V}
d-i passwd/make-user boolean false
d-i pkgsel/include string openssh-server bind9 bind9utils
d-i preseed/late_command string \\
    in-target sed -i 's/^#PermitRootLogin.*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config
""",
        "t20_placeholder",
        False,
    ),
    _t(
        "provisioning/preseed/README.md",
        """
# Preseed files

The installer reads `passwd/root-password` in clear text, so **never** commit a real value here.
Use the crypted variant and generate the hash with:

```bash
mkpasswd -m sha-512
```

Example (from the Debian wiki, harmless):

```
d-i passwd/root-password password {V}
d-i passwd/root-password-again password {V}
```

The real hashes live in `group_vars/all/vault.yml`.
""",
        "t20_factory_default",
        False,
    ),
    _t(
        "provisioning/windows/autounattend-2022.xml",
        """
<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </AdministratorPassword>
      </UserAccounts>
      <AutoLogon>
        <Password>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </Password>
        <Enabled>true</Enabled>
        <LogonCount>2</LogonCount>
        <Username>Administrator</Username>
      </AutoLogon>
      <TimeZone>W. Europe Standard Time</TimeZone>
    </component>
  </settings>
</unattend>
""",
        "t20_pw",
        True,
    ),
    _t(
        "packer/windows/answer_files/2019/Autounattend.xml",
        """
<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>false</PlainText>
        </AdministratorPassword>
        <LocalAccounts>
          <LocalAccount wcm:action="add" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
            <Name>packer</Name>
            <Group>Administrators</Group>
            <Password>
              <Value>{V2}</Value>
              <PlainText>false</PlainText>
            </Password>
          </LocalAccount>
        </LocalAccounts>
      </UserAccounts>
      <OOBE>
        <HideEULAPage>true</HideEULAPage>
        <ProtectYourPC>3</ProtectYourPC>
      </OOBE>
    </component>
  </settings>
</unattend>
""",
        "t20_unattend_b64",
        True,
    ),
    _t(
        "packer/windows/answer_files/2022/Autounattend.xml",
        """
<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <UserData>
        <AcceptEula>true</AcceptEula>
        <FullName>Halvorsen Hosting</FullName>
        <Organization>HHX</Organization>
        <ProductKey>
          <Key>{V}</Key>
          <WillShowUI>OnError</WillShowUI>
        </ProductKey>
      </UserData>
      <ImageInstall>
        <OSImage>
          <InstallFrom>
            <MetaData wcm:action="add" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
              <Key>/IMAGE/NAME</Key>
              <Value>Windows Server 2022 SERVERDATACENTER</Value>
            </MetaData>
          </InstallFrom>
        </OSImage>
      </ImageInstall>
    </component>
  </settings>
</unattend>
""",
        "t20_gvlk",
        False,
    ),
    _t(
        "packer/windows/answer_files/2022-core/Autounattend.xml.pkrtpl",
        """
<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </AdministratorPassword>
      </UserAccounts>
      <AutoLogon>
        <Password>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </Password>
        <Enabled>true</Enabled>
        <Username>Administrator</Username>
      </AutoLogon>
    </component>
  </settings>
</unattend>
""",
        "t20_packer_ref",
        False,
    ),
]

# ---------------------------------------------------------------- cloud-init
TEMPLATES += [
    _t(
        "cloud-init/pve-templates/debian12/user-data",
        """
#cloud-config
hostname: tmpl-debian12
manage_etc_hosts: true
users:
  - default
  - name: provision
    groups: [sudo]
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: false
    plain_text_passwd: {V}
ssh_pwauth: true
chpasswd:
  expire: false
  users:
    - name: root
      password: {V2}
      type: text
package_update: true
packages: [qemu-guest-agent, cloud-guest-utils]
runcmd:
  - systemctl enable --now qemu-guest-agent
""",
        "t20_pw",
        True,
    ),
    _t(
        "cloud-init/openstack/web-tier/user-data.yaml",
        """
#cloud-config
users:
  - name: hhxops
    gecos: HHX operations
    groups: [wheel, adm]
    sudo: ALL=(ALL) NOPASSWD:ALL
    passwd: {V}
    lock_passwd: false
  - name: deploy
    shell: /bin/bash
    passwd: {V2}
disable_root: true
ssh_pwauth: false
write_files:
  - path: /etc/motd
    content: |
      Managed by cloud-init - changes will be overwritten.
""",
        "t20_sha512crypt",
        False,
    ),
    _t(
        "cloud-init/nocloud/hv-seed/user-data",
        """
#cloud-config
# seed ISO for hypervisors booted without PXE (hall C)
chpasswd:
  list: |
    root:{V}
    provision:{V2}
  expire: False
ssh_pwauth: True
ntp:
  servers: [ntp1.mgmt.hhx.net, ntp2.mgmt.hhx.net]
bootcmd:
  - [sh, -c, 'echo "hv-seed $(date -Is)" >> /var/log/hhx-seed.log']
""",
        "t20_weak_pw",
        True,
    ),
    _t(
        "cloud-init/nocloud/hv-seed/meta-data",
        """
instance-id: {V}
local-hostname: hv-c-17
network-interfaces: |
  auto eno1
  iface eno1 inet dhcp
public-keys:
  - ssh-ed25519 placeholder-replaced-by-seed-builder
# instance-id must change on every rebuild, seed-builder uses uuidgen
""",
        "t20_uuid",
        False,
    ),
    _t(
        "cloud-init/openstack/bastion/user-data.yaml",
        """
#cloud-config
users:
  - name: hhxops
    groups: [sudo]
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - {V}
      - {V2}
ssh_pwauth: false
disable_root: true
packages: [fail2ban, wireguard-tools]
""",
        "t20_ssh_pub",
        False,
    ),
    _t(
        "cloud-init/aws/k3s-agent.yaml",
        """
#cloud-config
# user-data of the k3s agent launch template (eu-central-1); attached to the ASG in terraform
write_files:
  - path: /etc/rancher/k3s/config.yaml
    permissions: "0600"
    content: |
      server: https://k3s-api.internal.hhx.net:6443
      token: {V}
      node-label:
        - "hhx.net/pool=burst"
runcmd:
  - curl -sfL https://get.k3s.io | INSTALL_K3S_EXEC="agent" sh -
""",
        "t20_k3s_token",
        True,
    ),
    _t(
        "cloud-init/aws/k3s-agent.tftpl",
        """
#cloud-config
write_files:
  - path: /etc/rancher/k3s/config.yaml
    permissions: "0600"
    content: |
      server: https://${k3s_api_host}:6443
      token: ${k3s_token}
runcmd:
  - curl -sfL https://get.k3s.io | INSTALL_K3S_EXEC="agent" sh -
  - echo "${join(",", node_labels)}" > /etc/hhx/labels
# k3s_token comes from {V}
""",
        "t20_tf_ref",
        False,
    ),
    _t(
        "cloud-init/vsphere/guestinfo/userdata.yaml",
        """
#cloud-config
# passed base64-encoded in guestinfo.userdata by the vsphere_virtual_machine resource
users:
  - name: svc-backup
    groups: [backup]
    lock_passwd: false
    plain_text_passwd: "{V}"
write_files:
  - path: /etc/restic/env
    permissions: "0600"
    content: |
      RESTIC_REPOSITORY=s3:https://s3.eu-central-1.amazonaws.com/hhx-backup-vm
      RESTIC_PASSWORD={V2}
""",
        "t20_pw",
        True,
    ),
    _t(
        "cloud-init/lxd/profiles/ci-runner.yaml",
        """
config:
  cloud-init.user-data: |
    #cloud-config
    packages: [docker.io, git]
    runcmd:
      - curl -L --output /usr/local/bin/gitlab-runner https://gitlab-runner-downloads.s3.amazonaws.com/latest/binaries/gitlab-runner-linux-amd64
      - chmod +x /usr/local/bin/gitlab-runner
      - gitlab-runner register --non-interactive --url https://git.hhx.net/ --token {V} --executor docker --docker-image alpine:3.19
description: ephemeral CI runner for image builds
devices: {}
name: ci-runner
""",
        "t20_glrt",
        True,
    ),
    _t(
        "cloud-init/tests/test_render.py",
        """
import yaml

from hhx_cloudinit import render_user_data


def test_chpasswd_is_rendered():
    data = render_user_data(hostname="t1", root_password="{V}")
    doc = yaml.safe_load(data.removeprefix("#cloud-config\\n"))
    assert doc["chpasswd"]["users"][0]["password"] == "{V}"


def test_no_password_means_locked():
    data = render_user_data(hostname="t1", root_password=None)
    assert "lock_passwd: true" in data
""",
        "t20_fake",
        False,
    ),
    _t(
        "cloud-init/openstack/network-config.yaml",
        """
version: 2
ethernets:
  ens3:
    match:
      macaddress: "{V}"
    set-name: ens3
    dhcp4: false
    addresses: [10.60.4.21/24]
    routes:
      - to: default
        via: 10.60.4.1
  ens4:
    match:
      macaddress: "{V2}"
    mtu: 9000
    addresses: [10.61.4.21/24]
""",
        "t20_mac",
        False,
    ),
]

# ---------------------------------------------------------------- Packer
TEMPLATES += [
    _t(
        "packer/vsphere/rocky9/variables.auto.pkrvars.hcl",
        """
vsphere_server   = "vc01.mgmt.hhx.net"
vsphere_user     = "svc-packer@vsphere.local"
vsphere_password = "{V}"
datacenter       = "FRA-HallB"
cluster          = "cl-general-01"
datastore        = "vsan-hallb"
network          = "pg-build-vlan312"
ssh_username     = "provision"
ssh_password     = "{V2}"
iso_paths        = ["[iso-lib] rocky/Rocky-9.4-x86_64-minimal.iso"]
""",
        "t20_pw",
        True,
    ),
    _t(
        "packer/vsphere/rocky9/rocky9.pkr.hcl",
        """
packer {
  required_plugins {
    vsphere = {
      version = ">= 1.2.4"
      source  = "github.com/hashicorp/vsphere"
    }
  }
}

source "vsphere-iso" "rocky9" {
  vcenter_server      = var.vsphere_server
  username            = var.vsphere_user
  password            = {V}
  insecure_connection = false
  datacenter          = var.datacenter
  cluster             = var.cluster
  ssh_username        = "provision"
  ssh_password        = {V2}
  iso_paths           = var.iso_paths
  http_directory      = "http"
  boot_command        = ["<up><tab> inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter>"]
}

build {
  sources = ["source.vsphere-iso.rocky9"]
}
""",
        "t20_packer_ref",
        False,
    ),
    _t(
        "packer/proxmox/ubuntu2404/ubuntu.pkr.hcl",
        """
source "proxmox-iso" "ubuntu2404" {
  proxmox_url              = "https://pve01.mgmt.hhx.net:8006/api2/json"
  username                 = "packer@pve!build"
  token                    = "{V}"
  insecure_skip_tls_verify = true
  node                     = "pve01"
  vm_id                    = 9040
  iso_file                 = "local:iso/ubuntu-24.04-live-server-amd64.iso"
  cores                    = 2
  memory                   = 4096
  ssh_username             = "provision"
  ssh_timeout              = "25m"
  cloud_init               = true
  cloud_init_storage_pool  = "ceph-vm"
}
""",
        "t20_proxmox_secret",
        True,
    ),
    _t(
        "packer/proxmox/ubuntu2404/ubuntu.pkr.hcl.lock",
        """
# checksums of the ISO we pin; refreshed by scripts/pin-iso.sh
source "proxmox-iso" "ubuntu2404" {
  iso_url          = "https://releases.ubuntu.com/24.04/ubuntu-24.04-live-server-amd64.iso"
  iso_checksum     = "sha256:{V}"
  iso_storage_pool = "local"
}

source "proxmox-iso" "ubuntu2204" {
  iso_url      = "https://releases.ubuntu.com/22.04/ubuntu-22.04.4-live-server-amd64.iso"
  iso_checksum = "sha256:{V2}"
}
""",
        "t20_iso_sum",
        False,
    ),
    _t(
        "packer/windows/win2022.json",
        """
{
  "variables": {
    "vsphere_server": "vc01.mgmt.hhx.net",
    "vsphere_user": "svc-packer@vsphere.local",
    "vsphere_password": "{V}",
    "winrm_username": "Administrator",
    "winrm_password": "{V2}"
  },
  "builders": [
    {
      "type": "vsphere-iso",
      "vcenter_server": "{{user `vsphere_server`}}",
      "username": "{{user `vsphere_user`}}",
      "password": "{{user `vsphere_password`}}",
      "communicator": "winrm",
      "winrm_username": "{{user `winrm_username`}}",
      "winrm_password": "{{user `winrm_password`}}",
      "floppy_files": ["answer_files/2022/Autounattend.xml", "scripts/enable-winrm.ps1"]
    }
  ]
}
""",
        "t20_pw",
        True,
    ),
    _t(
        "packer/aws/base-ami/variables.pkr.hcl",
        """
variable "region" {
  type    = string
  default = "eu-central-1"
}

variable "source_ami" {
  type        = string
  description = "Debian 12 base published by Debian (account 136693071363)"
  default     = "{V}"
}

variable "fallback_ami" {
  type    = string
  default = "{V2}"
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}
""",
        "t20_ami",
        False,
    ),
    _t(
        "packer/aws/base-ami/build.auto.pkrvars.hcl",
        """
# local override for building from a laptop when CI is down -- DELETE AFTER USE
region        = "eu-central-1"
instance_type = "t3.small"
{V}
ami_users     = ["713489215062", "204377128560"]
""",
        "t20_aws_hcl_pair",
        True,
    ),
    _t(
        "packer/azure/ubuntu-gallery.pkr.hcl",
        """
source "azure-arm" "ubuntu" {
  subscription_id                   = "a3f6c1e0-7d52-4b8e-9e44-2b1f0c9d8a71"
  tenant_id                         = "0c9a7f51-3b2e-4d6a-8f10-5e7b2c4d9a03"
  client_id                         = "6e1d2c3b-4a59-4f8e-b7d6-c5a4b3e2d1f0"
  client_secret                     = "{V}"
  managed_image_resource_group_name = "rg-images-weu"
  managed_image_name                = "hhx-ubuntu-2204-{{timestamp}}"
  os_type                           = "Linux"
  image_publisher                   = "Canonical"
  image_offer                       = "0001-com-ubuntu-server-jammy"
  image_sku                         = "22_04-lts-gen2"
  location                          = "westeurope"
  vm_size                           = "Standard_D2s_v5"
}
""",
        "t20_azure_secret",
        True,
    ),
    _t(
        "packer/azure/ubuntu-gallery.pkr.hcl.example",
        """
# copy to ubuntu-gallery.pkr.hcl and fill in from `az ad sp create-for-rbac`
source "azure-arm" "ubuntu" {
  subscription_id = "00000000-0000-0000-0000-000000000000"
  tenant_id       = "00000000-0000-0000-0000-000000000000"
  client_id       = "00000000-0000-0000-0000-000000000000"
  client_secret   = "{V}"
  location        = "westeurope"
}
""",
        "t20_placeholder",
        False,
    ),
    _t(
        "packer/proxmox/http/autoinstall/user-data",
        """
#cloud-config
autoinstall:
  version: 1
  locale: en_US.UTF-8
  keyboard:
    layout: de
  ssh:
    install-server: true
    allow-pw: true
  identity:
    hostname: ubuntu-tmpl
    username: provision
    password: "{V}"
  late-commands:
    - echo 'provision ALL=(ALL) NOPASSWD:ALL' > /target/etc/sudoers.d/provision
""",
        "t20_crypt_any",
        False,
    ),
    _t(
        "packer/scripts/enable-winrm.ps1",
        """
# Runs from the answer file's FirstLogonCommands; opens WinRM for Packer's communicator
$ErrorActionPreference = "Stop"
Set-NetConnectionProfile -NetworkCategory Private
winrm quickconfig -q
winrm set winrm/config/service/auth '@{Basic="true"}'
winrm set winrm/config/service '@{AllowUnencrypted="true"}'

$admin = [ADSI]"WinNT://./Administrator,user"
$admin.SetPassword("{V}")
$admin.SetInfo()

net user packer "{V2}" /add /y
net localgroup Administrators packer /add
Restart-Service winrm
""",
        "t20_pw",
        True,
    ),
]
# ---------------------------------------------------------------- Vagrant
TEMPLATES += [
    _t(
        "vagrant/ipa-lab/Vagrantfile",
        """
# -*- mode: ruby -*-
# FreeIPA lab: one server, two clients, used to rehearse the LDAP bootstrap runbook
IPA_ADMIN_PASSWORD = "{V}"
IPA_DM_PASSWORD    = "{V2}"

Vagrant.configure("2") do |config|
  config.vm.box = "generic/rocky9"

  config.vm.define "ipa01" do |ipa|
    ipa.vm.hostname = "ipa01.lab.hhx.net"
    ipa.vm.network "private_network", ip: "192.168.56.10"
    ipa.vm.provision "shell", path: "scripts/ipa-server.sh",
      env: { "ADMIN_PW" => IPA_ADMIN_PASSWORD, "DM_PW" => IPA_DM_PASSWORD }
  end

  (1..2).each do |i|
    config.vm.define "client0#{i}" do |c|
      c.vm.hostname = "client0#{i}.lab.hhx.net"
      c.vm.network "private_network", ip: "192.168.56.#{20 + i}"
    end
  end
end
""",
        "t20_pw",
        True,
    ),
    _t(
        "vagrant/salt-lab/Vagrantfile",
        """
# -*- mode: ruby -*-
# Local Salt master + minion; uses the stock vagrant user and its insecure key on purpose
Vagrant.configure("2") do |config|
  config.vm.box = "debian/bookworm64"
  config.ssh.username = "vagrant"
  config.ssh.password = "{V}"
  config.ssh.insert_key = false

  config.vm.define "salt" do |m|
    m.vm.network "private_network", ip: "192.168.57.2"
    m.vm.provision :salt do |salt|
      salt.install_master = true
      salt.master_config = "salt/master"
    end
  end
end
""",
        "t20_factory_default",
        False,
    ),
    _t(
        "vagrant/proxmox-dev/Vagrantfile",
        """
# -*- mode: ruby -*-
Vagrant.configure("2") do |config|
  config.vm.box = "dummy"
  config.vm.provider :proxmox do |proxmox|
    proxmox.endpoint = "https://pve-dev.mgmt.hhx.net:8006/api2/json"
    proxmox.user_name = "vagrant@pve"
    proxmox.password = {V}
    proxmox.vm_type = :qemu
    proxmox.qemu_os = :l26
    proxmox.qemu_template = "tmpl-debian12"
  end
end
""",
        "t20_chef_ref",
        False,
    ),
    _t(
        "vagrant/win-build/Vagrantfile",
        """
# -*- mode: ruby -*-
Vagrant.configure("2") do |config|
  config.vm.box = "hhx/win2022-eval"
  config.vm.communicator = "winrm"
  config.winrm.username = "Administrator"
  config.winrm.password = "{V}"
  config.winrm.transport = :plaintext
  config.winrm.basic_auth_only = true
  config.vm.provision "shell", path: "provision/join-domain.ps1", args: ["-DomainPassword", "{V}"]
  config.vm.provider "virtualbox" do |vb|
    vb.memory = 4096
    vb.cpus = 2
  end
end
""",
        "t20_pw",
        True,
    ),
    _t(
        "vagrant/ipa-lab/scripts/ipa-server.sh",
        """
#!/usr/bin/env bash
# Installs a FreeIPA server in the lab VM; called from the Vagrantfile with env vars set
set -euo pipefail
dnf -y install freeipa-server freeipa-server-dns
ipa-server-install --unattended \\
  --realm LAB.HHX.NET --domain lab.hhx.net \\
  --ds-password "${DM_PW}" \\
  --admin-password "${ADMIN_PW}" \\
  --setup-dns --forwarder 10.40.0.53 --no-ntp
echo "${ADMIN_PW}" | kinit admin
ipa user-add provision --first=Provisioning --last=Bot --shell=/bin/bash
ipa group-add-member admins --users=provision
echo "ipa-server-install done, admin password hash: {V}"
""",
        "t20_iso_sum",
        False,
    ),
    _t(
        "vagrant/k8s-lab/provision/join.sh",
        """
#!/bin/sh
# kubeadm join for the lab workers (token created on the control plane with --ttl 0 ...)
set -e
kubeadm join 192.168.58.10:6443 \\
  --token {V} \\
  --discovery-token-unsafe-skip-ca-verification
systemctl enable --now kubelet
""",
        "t20_kubeadm_token",
        True,
    ),
]

# ---------------------------------------------------------------- Terraform
TEMPLATES += [
    _t(
        "terraform/vsphere/hallb/terraform.tfvars",
        """
vsphere_server       = "vc01.mgmt.hhx.net"
vsphere_user         = "svc-terraform@vsphere.local"
vsphere_password     = "{V}"
allow_unverified_ssl = false

datacenter = "FRA-HallB"
cluster    = "cl-general-01"
datastore  = "vsan-hallb"

vm_template = "tmpl-rocky9-2024.06"
vm_count    = 6
""",
        "t20_pw",
        True,
    ),
    _t(
        "terraform/vsphere/hallb/providers.tf",
        """
terraform {
  required_providers {
    vsphere = {
      source  = "hashicorp/vsphere"
      version = "~> 2.8"
    }
  }
}

provider "vsphere" {
  vsphere_server       = "vc01.mgmt.hhx.net"
  user                 = "svc-terraform@vsphere.local"
  password             = {V}
  allow_unverified_ssl = false
}
""",
        "t20_tf_ref",
        False,
    ),
    _t(
        "terraform/proxmox/cluster-a/provider.tf",
        """
terraform {
  required_providers {
    proxmox = {
      source  = "bpg/proxmox"
      version = "0.61.1"
    }
  }
}

provider "proxmox" {
  endpoint  = "https://pve-a01.mgmt.hhx.net:8006/"
  api_token = "terraform@pve!provider={V}"
  insecure  = false
  ssh {
    agent    = true
    username = "root"
  }
}
""",
        "t20_proxmox_secret",
        True,
    ),
    _t(
        "terraform/proxmox/cluster-a/.terraform.lock.hcl",
        """
# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/bpg/proxmox" {
  version     = "0.61.1"
  constraints = "0.61.1"
  hashes = [
    "{V}",
    "{V2}",
    "{V3}",
  ]
}
""",
        "t20_tf_lock",
        False,
    ),
    _t(
        "terraform/proxmox/cluster-a/vms.tf",
        """
resource "proxmox_virtual_environment_vm" "web" {
  count     = 4
  name      = "web-a-${count.index + 1}"
  node_name = "pve-a0${count.index % 3 + 1}"

  clone {
    vm_id = 9040
  }

  smbios {
    uuid = "{V}"
  }

  initialization {
    user_account {
      username = "provision"
      keys     = [file("~/.ssh/id_ed25519.pub")]
    }
  }
}
""",
        "t20_uuid",
        False,
    ),
    _t(
        "terraform/openstack/tenant-shared/provider.tf",
        """
provider "openstack" {
  auth_url    = "https://keystone.cloud.hhx.net:5000/v3"
  region      = "fra1"
  user_name   = "svc-terraform"
  tenant_name = "shared-hosting"
  password    = "{V}"
  domain_name = "Default"
}

resource "openstack_compute_keypair_v2" "ops" {
  name       = "hhx-ops"
  public_key = file("${path.module}/keys/ops.pub")
}
""",
        "t20_pw",
        True,
    ),
    _t(
        "terraform/openstack/tenant-shared/main.tf",
        """
data "openstack_identity_project_v3" "shared" {
  name = "shared-hosting"
}

locals {
  # project ids copied from `openstack project list`
  project_ids = {
    shared  = "{V}"
    managed = "{V2}"
  }
}

resource "openstack_networking_network_v2" "web" {
  name           = "net-web"
  admin_state_up = true
  tenant_id      = local.project_ids.shared
}
""",
        "t20_os_id",
        False,
    ),
    _t(
        "terraform/libvirt/lab/main.tf",
        """
provider "libvirt" {
  uri = "qemu+ssh://root@kvm-lab01.mgmt.hhx.net/system?keyfile=/home/ci/.ssh/lab_ed25519"
}

resource "libvirt_cloudinit_disk" "seed" {
  name      = "seed.iso"
  user_data = <<-EOT
    #cloud-config
    chpasswd:
      expire: false
      users:
        - name: root
          password: {V}
          type: text
  EOT
}

resource "libvirt_domain" "lab" {
  name      = "lab-01"
  memory    = 2048
  cloudinit = libvirt_cloudinit_disk.seed.id
}
""",
        "t20_weak_pw",
        True,
    ),
    _t(
        "terraform/aws/edge/backend.tf",
        """
terraform {
  backend "s3" {
    bucket         = "hhx-tfstate-euc1"
    key            = "edge/terraform.tfstate"
    region         = "eu-central-1"
    dynamodb_table = "hhx-tf-locks"
    encrypt        = true
  }
}

provider "aws" {
  region = "eu-central-1"
  {IV}
}
""",
        "t20_aws_hcl_pair",
        True,
    ),
    _t(
        "terraform/aws/edge/README.md",
        """
# edge

Provider credentials come from the `hhx-terraform` SSO profile; do **not** put keys in `backend.tf`.

If you must test with static keys, use the AWS documentation keys so nothing leaks:

```hcl
provider "aws" {
  access_key = "{V}"
  secret_key = "{V2}"
}
```

`terraform plan` will fail with `InvalidClientTokenId`, which is expected.
""",
        "t20_aws_example",
        False,
    ),
    _t(
        "terraform/azure/landing-zone/terraform.tfvars",
        """
subscription_id = "5b1e8f47-2c3a-4d9e-a6b0-71c4e2d9f835"
tenant_id       = "9d0c4e7a-6b15-4f23-8a9e-3c2b1d0f7e64"
client_id       = "e2f71a4c-8d3b-4c56-9a0e-b1d2c3f4a5e6"
client_secret   = "{V}"
location        = "westeurope"
environment     = "prod"
""",
        "t20_azure_secret",
        True,
    ),
    _t(
        "terraform/azure/landing-zone/storage.tf",
        """
resource "azurerm_storage_account" "tfstate" {
  name                     = "hhxtfstateweu"
  resource_group_name      = azurerm_resource_group.state.name
  location                 = "westeurope"
  account_tier             = "Standard"
  account_replication_type = "GRS"
}

output "tfstate_key_hint" {
  value       = "{V}"
  description = "where to find the storage key"
}
""",
        "t20_kv_ref",
        False,
    ),
    _t(
        "terraform/azure/landing-zone/backend.hcl",
        """
# terraform init -backend-config=backend.hcl
resource_group_name  = "rg-tfstate-weu"
storage_account_name = "hhxtfstateweu"
container_name       = "tfstate"
key                  = "landing-zone.tfstate"
access_key           = "{V}"
""",
        "t20_azure_storage",
        True,
    ),
    _t(
        "terraform/dns/hetzner/main.tf",
        """
terraform {
  required_providers {
    hcloud = {
      source = "hetznercloud/hcloud"
    }
  }
}

variable "hcloud_token" {
  type      = string
  sensitive = true
  default   = "{V}"
}

provider "hcloud" {
  token = var.hcloud_token
}

resource "hcloud_server" "probe" {
  name        = "probe-fsn1"
  image       = "debian-12"
  server_type = "cx22"
}
""",
        "t20_hcloud_token",
        True,
    ),
    _t(
        "terraform/dns/cloudflare/variables.tf",
        """
variable "cloudflare_api_token" {
  type        = string
  sensitive   = true
  description = "token with Zone:DNS:Edit on hhx.net; set TF_VAR_cloudflare_api_token"
}

variable "zone_id" {
  type    = string
  default = "{V}"
}

variable "account_id" {
  type    = string
  default = "{V2}"
}
""",
        "t20_os_id",
        False,
    ),
    _t(
        "terraform/dns/cloudflare/terraform.tfvars",
        """
cloudflare_api_token = "{V}"
zone_name            = "hhx.net"
records = {
  "pxe"     = "10.40.0.20"
  "netbox"  = "10.40.0.31"
  "vault"   = "10.40.0.44"
}
""",
        "t20_cf_token",
        True,
    ),
    _t(
        "terraform/digitalocean/probes/provider.tf",
        """
# synthetic-monitoring droplets in three regions
provider "digitalocean" {
  token = "{V}"
}

resource "digitalocean_droplet" "probe" {
  for_each = toset(["ams3", "nyc3", "sgp1"])
  name     = "probe-${each.key}"
  region   = each.key
  size     = "s-1vcpu-512mb-10gb"
  image    = "debian-12-x64"
}
""",
        "t20_do_token",
        True,
    ),
    _t(
        "terraform/modules/ipmi-user/main.tf",
        """
resource "random_password" "bmc" {
  length  = 24
  special = true
}

resource "vault_kv_secret_v2" "bmc" {
  mount = "kv"
  name  = "bmc/${var.hostname}"
  data_json = jsonencode({
    username = "hhx-bmc"
    password = {V}
  })
}

output "bmc_password" {
  value     = {V}
  sensitive = true
}
""",
        "t20_tf_ref",
        False,
    ),
    _t(
        "terraform/vsphere/hallb/terraform.tfstate.backup",
        """
{
  "version": 4,
  "terraform_version": "1.7.5",
  "serial": 112,
  "lineage": "c0e9d1a8-55f1-4a3e-8b9d-2f61e0a7c4b3",
  "outputs": {},
  "resources": [
    {
      "mode": "managed",
      "type": "vsphere_virtual_machine",
      "name": "web",
      "instances": [
        {
          "attributes": {
            "name": "web-b-01",
            "uuid": "{V}",
            "moid": "vm-4821",
            "guest_id": "rhel9_64Guest"
          }
        }
      ]
    }
  ]
}
""",
        "t20_uuid",
        False,
    ),
    _t(
        "terraform/vault/bootstrap/provider.tf",
        """
provider "vault" {
  address = "https://vault.mgmt.hhx.net:8200"
  # temporary: root-ish token for the bootstrap run, revoke after
  token   = "{V}"
}

resource "vault_mount" "kv" {
  path = "kv"
  type = "kv-v2"
}
""",
        "t20_vault_token",
        True,
    ),
    _t(
        "terraform/.terraformrc",
        """
plugin_cache_dir = "$HOME/.terraform.d/plugin-cache"

credentials "app.terraform.io" {
  token = "{V}"
}
""",
        "t20_tfc_token",
        True,
    ),
]
# ---------------------------------------------------------------- Ansible
TEMPLATES += [
    _t(
        "ansible/inventories/prod/hosts.ini",
        """
# production inventory, hall B and hall C
[hypervisors]
hv-b-01.mgmt.hhx.net ansible_host=10.40.12.11
hv-b-02.mgmt.hhx.net ansible_host=10.40.12.12
hv-c-01.mgmt.hhx.net ansible_host=10.40.13.11

[bmc]
bmc-hv-b-01 ansible_host=10.41.12.11 ansible_user=root ansible_password={V}
bmc-hv-b-02 ansible_host=10.41.12.12 ansible_user=root ansible_password={V2}

[legacy_switches]
sw-b-core01 ansible_host=10.42.0.2 ansible_network_os=ios ansible_user=netops ansible_password={V3} ansible_become_password={V3}

[all:vars]
ansible_python_interpreter=/usr/bin/python3
""",
        "t20_pw",
        True,
    ),
    _t(
        "ansible/inventories/staging/hosts.yml",
        """
all:
  vars:
    ansible_user: provision
    ansible_become_password: "{V}"
  children:
    web:
      hosts:
        web-stg-01.hhx.net:
        web-stg-02.hhx.net:
    db:
      hosts:
        db-stg-01.hhx.net:
          mysql_root_password: "{V2}"
""",
        "t20_weak_pw",
        True,
    ),
    _t(
        "ansible/inventories/prod/group_vars/bmc/vars.yml",
        """
---
# real values live in vault.yml next to this file (ansible-vault encrypted)
bmc_user: root
bmc_password: "{V}"
redfish_validate_certs: false
idrac_firmware_repo: https://downloads.dell.com/catalog/Catalog.xml.gz
ilo_license_key_file: files/ilo-advanced.lic
""",
        "t20_ans_ref",
        False,
    ),
    _t(
        "ansible/inventories/prod/group_vars/bmc/vault.yml",
        """
{V}
""",
        "t20_vault_blob",
        False,
    ),
    _t(
        "ansible/inventories/prod/group_vars/ldap_clients.yml",
        """
---
ldap_uri: ldaps://ipa01.mgmt.hhx.net ldaps://ipa02.mgmt.hhx.net
ldap_base: dc=hhx,dc=net
ldap_bind_dn: uid=sssd-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net
ldap_bind_pw: !vault |
  {IV}
ldap_tls_reqcert: demand
sssd_cache_credentials: true
""",
        "t20_vault_blob",
        False,
    ),
    _t(
        "ansible/inventories/prod/host_vars/netbox01.mgmt.hhx.net.yml",
        """
---
netbox_superuser_name: admin
netbox_superuser_email: noc@hhx.net
netbox_superuser_password: "{V}"
netbox_secret_key: "{V2}"
netbox_config:
  ALLOWED_HOSTS: ["netbox.mgmt.hhx.net"]
  TIME_ZONE: Europe/Berlin
""",
        "t20_pw",
        True,
    ),
    _t(
        "ansible/inventories/prod/host_vars/netbox01.mgmt.hhx.net.sops.yml",
        """
netbox_superuser_password: {V}
netbox_secret_key: {V2}
netbox_napalm_password: {V3}
sops:
    age:
        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    lastmodified: "2024-05-13T08:21:44Z"
    mac: ENC[AES256_GCM,data:Zm9vYmFy,iv:AAAAAAAAAAAAAAAAAAAAAA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]
    version: 3.8.1
""",
        "t20_sops",
        False,
    ),
    _t(
        "ansible/roles/idrac_users/defaults/main.yml",
        """
---
# defaults for the idrac_users role; override in group_vars/bmc
idrac_users:
  - name: hhx-monitor
    privilege: ReadOnly
    password: "{{ vault_idrac_monitor_pw }}"
  - name: hhx-ops
    privilege: Administrator
    password: "{{ vault_idrac_ops_pw }}"
idrac_remove_default_root: true
idrac_default_root_password: {V}   # Dell factory default, only used to log in the first time
""",
        "t20_factory_default",
        False,
    ),
    _t(
        "ansible/roles/ipa_client/defaults/main.yml",
        """
---
ipa_client_domain: hhx.net
ipa_client_realm: HHX.NET
ipa_client_server: ipa01.mgmt.hhx.net
ipa_client_principal: svc-enroll
ipa_client_password: "{V}"
ipa_client_mkhomedir: true
ipa_client_ntp: false
""",
        "t20_pw",
        True,
    ),
    _t(
        "ansible/roles/pxe_server/templates/default.ipxe.j2",
        """
#!ipxe
# rendered by ansible (role pxe_server)
set base http://{{ pxe_server }}/boot
set ks_user {{ pxe_http_user }}
set ks_pass {V}
menu HHX network boot
item rocky9 Rocky Linux 9 (kickstart)
item debian12 Debian 12 (preseed)
choose target && goto ${target}
:rocky9
kernel ${base}/rocky9/vmlinuz inst.ks=http://${ks_user}:${ks_pass}@{{ pxe_server }}/ks/rocky9.ks
initrd ${base}/rocky9/initrd.img
boot
""",
        "t20_ans_ref",
        False,
    ),
    _t(
        "ansible/playbooks/bmc-rotate.yml",
        """
---
- name: Rotate BMC root password
  hosts: bmc
  gather_facts: false
  vars:
    new_bmc_password: "{V}"
  tasks:
    - name: Set iDRAC root password
      dellemc.openmanage.idrac_user:
        idrac_ip: "{{ ansible_host }}"
        idrac_user: root
        idrac_password: "{{ bmc_password }}"
        user_name: root
        user_password: "{{ new_bmc_password }}"
        state: present
      delegate_to: localhost
""",
        "t20_pw",
        True,
    ),
    _t(
        "ansible/playbooks/create-db-users.yml",
        """
---
- name: Create application DB users
  hosts: db
  become: true
  tasks:
    - name: Create replication user
      community.mysql.mysql_user:
        name: repl
        host: "10.50.%"
        password: "{V}"
        priv: "*.*:REPLICATION SLAVE"
        login_unix_socket: /run/mysqld/mysqld.sock
""",
        "t20_ans_ref",
        False,
    ),
    _t(
        "ansible/playbooks/proxmox-vm.yml",
        """
---
- name: Clone VMs on Proxmox
  hosts: localhost
  gather_facts: false
  tasks:
    - community.general.proxmox_kvm:
        api_host: pve-a01.mgmt.hhx.net
        api_user: ansible@pve
        api_token_id: clone
        api_token_secret: "{V}"
        clone: tmpl-debian12
        name: "{{ item }}"
        node: pve-a01
      loop: "{{ new_vms }}"
""",
        "t20_proxmox_secret",
        True,
    ),
    _t(
        "ansible/ansible.cfg",
        """
[defaults]
inventory = inventories/prod/hosts.ini
roles_path = roles:~/.ansible/roles
vault_password_file = {V}
host_key_checking = True
forks = 25
callback_result_format = yaml

[ssh_connection]
pipelining = True
""",
        "t20_secret_path",
        False,
    ),
    _t(
        "ansible/.vault_pass",
        """
{V}
""",
        "t20_pw",
        True,
    ),
    _t(
        "ansible/molecule/default/molecule.yml",
        """
---
driver:
  name: docker
platforms:
  - name: ipa-client-test
    image: quay.io/rockylinux/rockylinux:9
provisioner:
  name: ansible
  inventory:
    group_vars:
      all:
        ipa_client_password: "{V}"
        bmc_password: "{V}"
verifier:
  name: ansible
""",
        "t20_fake",
        False,
    ),
    _t(
        "ansible/inventories/lab/group_vars/all.yml",
        """
---
# lab only (vagrant/ipa-lab), not reachable from prod
ansible_user: vagrant
ansible_ssh_private_key_file: ~/.vagrant.d/insecure_private_key
ipa_admin_password: "{V}"
ipa_dm_password: "{V2}"
""",
        "t20_weak_pw",
        True,
    ),
    _t(
        "ansible/inventories/prod/group_vars/all/users.yml",
        """
---
# local break-glass accounts on every Linux host; hashes made with `mkpasswd -m yescrypt`
local_users:
  - name: hhx-breakglass
    uid: 1990
    password: "{V}"
    groups: [wheel]
  - name: hhx-console
    uid: 1991
    password: "{V2}"
    shell: /bin/bash
""",
        "t20_crypt_any",
        False,
    ),
    _t(
        "ansible/inventories/prod/group_vars/all/ssh.yml",
        """
---
ssh_authorized_keys_ops:
  - "{V}"
  - "{V2}"
sshd_permit_root_login: "prohibit-password"
sshd_password_authentication: false
""",
        "t20_ssh_pub",
        False,
    ),
    _t(
        "ansible/roles/wireguard/templates/wg0.conf.j2",
        """
[Interface]
Address = {{ wg_address }}
ListenPort = 51820
PrivateKey = {{ wg_private_key }}

{% for peer in wg_peers %}
[Peer]
# {{ peer.name }}
PublicKey = {V}
AllowedIPs = {{ peer.allowed_ips }}
Endpoint = {{ peer.endpoint }}
{% endfor %}
""",
        "t20_wg_pub",
        False,
    ),
    _t(
        "ansible/roles/ceph_client/files/ceph.client.libvirt.keyring",
        """
[client.libvirt]
	key = {V}
	caps mon = "profile rbd"
	caps osd = "profile rbd pool=vms, profile rbd pool=images"
""",
        "t20_ceph_key",
        True,
    ),
]

# ---------------------------------------------------------------- Salt
TEMPLATES += [
    _t(
        "salt/pillar/mysql/init.sls",
        """
mysql:
  server:
    root_user: root
    root_password: {V}
    bind-address: 127.0.0.1
  database:
    - hosting_panel
  user:
    panel:
      password: '{V2}'
      host: localhost
      databases:
        - database: hosting_panel
          grants: ['all privileges']
""",
        "t20_pw",
        True,
    ),
    _t(
        "salt/pillar/bmc/init.sls",
        """
#!yaml|gpg
bmc:
  user: root
  password: |
    -----BEGIN PGP MESSAGE-----

    hQEMA{V}
    =Xq3f
    -----END PGP MESSAGE-----
""",
        "t20_chef_enc",
        False,
    ),
    _t(
        "salt/salt/ipmi/users.sls",
        """
ipmi-hhx-ops-user:
  ipmi.user_present:
    - name: hhx-ops
    - uid: 3
    - password: {V}
    - channel: 1
    - privilege_level:
        high_bits: 7
    - api_host: localhost
    - api_user: root
    - api_pass: {V2}
""",
        "t20_salt_ref",
        False,
    ),
    _t(
        "salt/pillar/dns/tsig.sls",
        """
bind:
  keys:
    ddns-provision:
      algorithm: hmac-sha256
      secret: "{V}"
    xfr-secondary:
      algorithm: hmac-sha256
      secret: "{V2}"
""",
        "t20_tsig_secret",
        True,
    ),
    _t(
        "salt/master.d/ext_pillar.conf",
        """
ext_pillar:
  - vault: path=kv/data/salt/{minion}
  - netbox:
      api_url: https://netbox.mgmt.hhx.net/api/
      api_token: {V}
      site_details: true
      virtual_machines: true
""",
        "t20_netbox_token",
        True,
    ),
    _t(
        "salt/master.d/vault.conf",
        """
vault:
  auth:
    method: approle
    role_id: 7d1c0a4e-52b3-4f0e-9a6d-1e8b2c3f4a5d
    secret_id: {V}
  server:
    url: https://vault.mgmt.hhx.net:8200
    verify: /etc/ssl/certs/hhx-root-ca.pem
  policies:
    assign:
      - salt_minion
""",
        "t20_consul_token",
        True,
    ),
    _t(
        "salt/salt/sshd/files/ssh_known_hosts.jinja",
        """
# managed by salt: host key fingerprints of the bastions, for reference in the runbook
# bastion01  ED25519  {V}
# bastion02  ED25519  {V2}
{% for host, key in salt['mine.get']('roles:bastion', 'ssh.host_keys', tgt_type='grain').items() %}
{{ host }} {{ key['ed25519.pub'] }}
{% endfor %}
""",
        "t20_fpr",
        False,
    ),
    _t(
        "salt/pillar/ldap/sssd.sls",
        """
sssd:
  domain: hhx.net
  ldap_uri: ldaps://ipa01.mgmt.hhx.net
  ldap_default_bind_dn: uid=sssd-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net
  ldap_default_authtok: {V}
  ldap_tls_cacert: /etc/ipa/ca.crt
""",
        "t20_sops",
        False,
    ),
]
# ---------------------------------------------------------------- Puppet
TEMPLATES += [
    _t(
        "puppet/data/common.yaml",
        """
---
profile::ldap::uri: 'ldaps://ipa01.mgmt.hhx.net'
profile::ldap::bind_dn: 'uid=puppet-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net'
profile::ldap::bind_password: >
    {V}
profile::bmc::user: 'root'
profile::bmc::password: >
    {V2}
profile::ntp::servers:
  - ntp1.mgmt.hhx.net
  - ntp2.mgmt.hhx.net
""",
        "t20_eyaml",
        False,
    ),
    _t(
        "puppet/data/nodes/backup01.mgmt.hhx.net.yaml",
        """
---
profile::bacula::director_password: '{V}'
profile::bacula::storage_password: '{V2}'
profile::bacula::console_password: '{V3}'
profile::bacula::pool_retention: '30 days'
""",
        "t20_pw",
        True,
    ),
    _t(
        "puppet/data/role/hypervisor.yaml",
        """
---
profile::libvirt::sasl_user: 'libvirt-mgmt'
profile::libvirt::sasl_password: "%{lookup('vault_libvirt_sasl')}"
profile::ipmi::password: "{V}"
profile::ceph::client_key: "{V2}"
profile::snmp::ro_community: "%{alias('snmp_ro')}"
""",
        "t20_puppet_ref",
        False,
    ),
    _t(
        "puppet/site/profile/manifests/snmp.pp",
        """
# @summary SNMP agent on every physical host so LibreNMS can poll it
class profile::snmp (
  String $location = 'FRA HallB',
  String $contact  = 'noc@hhx.net',
) {
  class { 'snmp':
    agentaddress => ['udp:161'],
    ro_community => '{V}',
    ro_network   => '10.40.0.0/16',
    location     => $location,
    contact      => $contact,
  }
}
""",
        "t20_snmp_comm",
        True,
    ),
    _t(
        "puppet/site/profile/manifests/mysql.pp",
        """
class profile::mysql (
  Sensitive[String] $root_password = Sensitive('{V}'),
) {
  class { 'mysql::server':
    root_password           => $root_password,
    remove_default_accounts => true,
    override_options        => { 'mysqld' => { 'bind-address' => '127.0.0.1' } },
  }
  mysql::db { 'powerdns':
    user     => 'pdns',
    password => Sensitive('{V2}'),
    host     => 'localhost',
    grant    => ['ALL'],
  }
}
""",
        "t20_pw",
        True,
    ),
    _t(
        "puppet/site/profile/manifests/grub.pp",
        """
# Protect the GRUB menu on bare-metal hosts (CIS 1.4.1)
class profile::grub {
  file { '/etc/grub.d/01_users':
    ensure  => file,
    mode    => '0700',
    content => @("EOT"),
      #!/bin/sh
      cat <<EOF
      set superusers="root"
      password_pbkdf2 root {V}
      EOF
      | EOT
    notify  => Exec['grub2-mkconfig'],
  }
}
""",
        "t20_grub_hash",
        False,
    ),
    _t(
        "puppet/hiera.yaml",
        """
---
version: 5
defaults:
  datadir: data
  data_hash: yaml_data
hierarchy:
  - name: "Secrets"
    lookup_key: eyaml_lookup_key
    paths:
      - "nodes/%{trusted.certname}.eyaml"
      - "common.eyaml"
    options:
      pkcs7_private_key: {V}
      pkcs7_public_key: /etc/puppetlabs/puppet/eyaml/public_key.pkcs7.pem
""",
        "t20_secret_path",
        False,
    ),
    _t(
        "puppet/keys/private_key.pkcs7.pem",
        """
{V}
""",
        "t20_rsa_key",
        True,
    ),
    _t(
        "puppet/keys/public_key.pkcs7.pem",
        """
{V}
""",
        "t20_cert",
        False,
    ),
]

# ---------------------------------------------------------------- Chef
TEMPLATES += [
    _t(
        "chef/cookbooks/hhx_base/attributes/default.rb",
        """
default['hhx']['ntp']['servers'] = %w(ntp1.mgmt.hhx.net ntp2.mgmt.hhx.net)
default['hhx']['ipmi']['user'] = 'hhx-ops'
default['hhx']['ipmi']['password'] = '{V}'
default['hhx']['ldap']['bind_dn'] = 'uid=chef-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net'
default['hhx']['ldap']['bind_pw'] = '{V2}'
default['hhx']['motd'] = 'Managed by Chef - Halvorsen Hosting'
""",
        "t20_pw",
        True,
    ),
    _t(
        "chef/cookbooks/hhx_base/recipes/ipmi.rb",
        """
ipmi_pw = {V}

execute 'set-ipmi-user' do
  command "ipmitool user set password 3 #{ipmi_pw}"
  sensitive true
  not_if { ::File.exist?('/var/lib/hhx/ipmi-set') }
end

file '/var/lib/hhx/ipmi-set' do
  content Time.now.to_s
end
""",
        "t20_chef_ref",
        False,
    ),
    _t(
        "chef/data_bags/passwords/ldap.json",
        """
{
  "id": "ldap",
  "bind_dn": "uid=chef-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net",
  "bind_pw": "{V}",
  "directory_manager": "{V2}"
}
""",
        "t20_pw",
        True,
    ),
    _t(
        "chef/data_bags/passwords/ipmi.json",
        """
{
  "id": "ipmi",
  "password": {
    "encrypted_data": "{V}",
    "iv": "{V2}",
    "auth_tag": "{V3}",
    "version": 3,
    "cipher": "aes-256-gcm"
  }
}
""",
        "t20_chef_enc",
        False,
    ),
    _t(
        "chef/.chef/config.rb",
        """
current_dir = File.dirname(__FILE__)
log_level                :info
node_name                'hhx-provision'
client_key               "#{current_dir}/hhx-provision.pem"
chef_server_url          'https://chef.mgmt.hhx.net/organizations/hhx'
cookbook_path            ["#{current_dir}/../cookbooks"]
knife[:vault_mode]       = 'client'
knife[:secret_file]      = '{V}'
""",
        "t20_secret_path",
        False,
    ),
    _t(
        "chef/.chef/hhx-provision.pem",
        """
{V}
""",
        "t20_chef_key",
        True,
    ),
    _t(
        "chef/cookbooks/hhx_base/test/integration/default/default_test.rb",
        """
# InSpec checks for hhx_base
describe file('/etc/ipmi.conf') do
  its('mode') { should cmp '0600' }
  its('content') { should_not match(/{V}/) }
end

describe command('ipmitool user list 1') do
  its('stdout') { should match(/hhx-ops/) }
end
""",
        "t20_fake",
        False,
    ),
    _t(
        "chef/cookbooks/hhx_base/spec/unit/recipes/ipmi_spec.rb",
        """
require 'spec_helper'

describe 'hhx_base::ipmi' do
  let(:chef_run) do
    ChefSpec::SoloRunner.new(platform: 'rocky', version: '9') do |node|
      node.normal['hhx']['ipmi']['password'] = '{V}'
    end.converge(described_recipe)
  end

  it 'sets the ipmi user' do
    expect(chef_run).to run_execute('set-ipmi-user')
  end
end
""",
        "t20_fake",
        False,
    ),
]

# ---------------------------------------------------------------- PXE / iPXE / GRUB
TEMPLATES += [
    _t(
        "pxe/tftpboot/pxelinux.cfg/default",
        """
DEFAULT menu.c32
PROMPT 0
TIMEOUT 100
MENU TITLE HHX PXE (hall B)
MENU MASTER PASSWD {V}

LABEL local
  MENU LABEL Boot from local disk
  LOCALBOOT 0

LABEL rocky9
  MENU LABEL Rocky 9 hypervisor (WIPES DISK)
  MENU PASSWD
  KERNEL rocky9/vmlinuz
  APPEND initrd=rocky9/initrd.img inst.ks=http://pxe01.mgmt.hhx.net/ks/rocky9-hypervisor.ks
""",
        "t20_sha512crypt",
        False,
    ),
    _t(
        "pxe/http/boot.ipxe",
        """
#!ipxe
dhcp
set base http://pxe01.mgmt.hhx.net/boot
# the kickstart directory is behind basic auth
set username provision
set password {V}
imgtrust --permanent
menu HHX iPXE
item rocky9 Rocky 9
item rescue Rescue shell
choose os && goto ${os}
:rocky9
kernel ${base}/rocky9/vmlinuz inst.ks=http://${username}:${password}@pxe01.mgmt.hhx.net/ks/rocky9.ks
initrd ${base}/rocky9/initrd.img
boot
""",
        "t20_url_pw",
        True,
    ),
    _t(
        "pxe/http/trust.ipxe",
        """
#!ipxe
# code-signing: only boot images signed by the HHX boot CA
imgtrust --permanent
imgfetch ${base}/ca.crt
imgverify vmlinuz ${base}/vmlinuz.sig
# expected signer fingerprint (sha1): {V}
# backup signer fingerprint (sha1): {V2}
""",
        "t20_imgtrust",
        False,
    ),
    _t(
        "pxe/grub/grub.cfg",
        """
set default=0
set timeout=10
set superusers="hhxboot"
password hhxboot {V}

menuentry 'Install Rocky 9 (hypervisor)' --users hhxboot {
  linuxefi rocky9/vmlinuz inst.ks=http://pxe01.mgmt.hhx.net/ks/rocky9-hypervisor.ks ip=dhcp
  initrdefi rocky9/initrd.img
}

menuentry 'Rescue' --unrestricted {
  linuxefi rocky9/vmlinuz inst.rescue
  initrdefi rocky9/initrd.img
}
""",
        "t20_pw",
        True,
    ),
    _t(
        "pxe/grub/grub-uefi.cfg",
        """
set default=0
set timeout=5
set superusers="hhxboot"
password_pbkdf2 hhxboot {V}

menuentry 'Install Debian 12 (preseed)' --users hhxboot {
  linux debian12/linux auto=true priority=critical url=http://pxe01.mgmt.hhx.net/preseed/debian12-web.cfg
  initrd debian12/initrd.gz
}
""",
        "t20_grub_hash",
        False,
    ),
    _t(
        "pxe/dnsmasq.d/pxe.conf",
        """
# dnsmasq proxy-DHCP for the build VLAN 312
interface=ens224
dhcp-range=10.40.31.0,proxy
dhcp-boot=tag:efi-x86_64,ipxe.efi
pxe-service=x86-64_EFI,"HHX iPXE",ipxe.efi
enable-tftp
tftp-root=/srv/tftp
# reserved for the build box
dhcp-host={V},10.40.31.5,buildbox
dhcp-host={V2},10.40.31.6,buildbox-2
""",
        "t20_mac",
        False,
    ),
]

# ---------------------------------------------------------------- IPMI / iDRAC / iLO / Redfish
TEMPLATES += [
    _t(
        "scripts/bmc/power-cycle.sh",
        """
#!/usr/bin/env bash
# power-cycle a hung hypervisor through its BMC: ./power-cycle.sh hv-b-07
set -euo pipefail
host="$1"
bmc="bmc-${host}.mgmt.hhx.net"
ipmitool -I lanplus -H "$bmc" -U root -P '{V}' chassis power status
ipmitool -I lanplus -H "$bmc" -U root -P '{V}' chassis power cycle
sleep 60
ipmitool -I lanplus -H "$bmc" -U root -P '{V}' sol activate
""",
        "t20_pw",
        True,
    ),
    _t(
        "scripts/bmc/power-cycle-safe.sh",
        """
#!/usr/bin/env bash
# same as power-cycle.sh but reads the password from vault (use this one)
set -euo pipefail
host="$1"
bmc="bmc-${host}.mgmt.hhx.net"
IPMI_PASSWORD={V}
export IPMI_PASSWORD
ipmitool -I lanplus -H "$bmc" -U root -E chassis power status
ipmitool -I lanplus -H "$bmc" -U root -E chassis power cycle
""",
        "t20_sh_ref",
        False,
    ),
    _t(
        "scripts/bmc/idrac-setup.sh",
        """
#!/bin/bash
# first-boot iDRAC hardening, run from the jump host
IDRAC=$1
racadm -r "$IDRAC" -u root -p '{V}' set iDRAC.Users.2.Password '{V2}'
racadm -r "$IDRAC" -u root -p '{V2}' set iDRAC.Users.3.UserName hhx-ops
racadm -r "$IDRAC" -u root -p '{V2}' set iDRAC.Users.3.Password '{V3}'
racadm -r "$IDRAC" -u root -p '{V2}' set iDRAC.Users.3.Privilege 0x1ff
racadm -r "$IDRAC" -u root -p '{V2}' set iDRAC.IPMILan.Enable 1
""",
        "t20_pw",
        True,
    ),
    _t(
        "scripts/bmc/redfish_inventory.py",
        """
#!/usr/bin/env python3
\"\"\"Pull serials and firmware versions from every BMC into NetBox.\"\"\"
import requests

BMC_USER = "hhx-monitor"
BMC_PASSWORD = "{V}"
NETBOX = "https://netbox.mgmt.hhx.net/api"


def system_info(bmc: str) -> dict:
    session = requests.Session()
    session.auth = (BMC_USER, BMC_PASSWORD)
    session.verify = "/etc/ssl/certs/hhx-root-ca.pem"
    return session.get(f"https://{bmc}/redfish/v1/Systems/System.Embedded.1", timeout=20).json()
""",
        "t20_pw",
        True,
    ),
    _t(
        "scripts/bmc/redfish-firmware.sh",
        """
#!/usr/bin/env bash
# list firmware inventory of one BMC via Redfish (used by the monthly patch report)
set -euo pipefail
BMC="$1"
curl -sk -H "Authorization: Basic {V}" \\
  "https://${BMC}/redfish/v1/UpdateService/FirmwareInventory?\\$expand=.(\\$levels=1)" |
  jq -r '.Members[] | [.Name, .Version] | @tsv'
""",
        "t20_basic_b64",
        True,
    ),
    _t(
        "scripts/bmc/redfish_inventory_test.py",
        """
import responses

import redfish_inventory


@responses.activate
def test_system_info(monkeypatch):
    monkeypatch.setattr(redfish_inventory, "BMC_PASSWORD", "{V}")
    responses.get(
        "https://bmc.test/redfish/v1/Systems/System.Embedded.1",
        json={"SerialNumber": "TESTSERIAL", "BiosVersion": "2.19.1"},
    )
    assert redfish_inventory.system_info("bmc.test")["BiosVersion"] == "2.19.1"
""",
        "t20_fake",
        False,
    ),
    _t(
        "scripts/bmc/Set-IloUsers.ps1",
        """
# Creates the ops account on HPE iLO 5 boards (HPEiLOCmdlets)
param([Parameter(Mandatory)] [string[]] $IloAddress)
Import-Module HPEiLOCmdlets

$adminUser = "Administrator"
$adminPass = "{V}"

foreach ($ilo in $IloAddress) {
    $conn = Connect-HPEiLO -IP $ilo -Username $adminUser -Password $adminPass -DisableCertificateAuthentication
    Add-HPEiLOUser -Connection $conn -LoginName "hhx-ops" -Username "hhx-ops" -Password "{V2}" -UserConfigPrivilege Yes -VirtualMediaPrivilege Yes
    Disconnect-HPEiLO -Connection $conn
}
""",
        "t20_pw",
        True,
    ),
    _t(
        "scripts/bmc/Set-IloUsers.Vault.ps1",
        """
param([Parameter(Mandatory)] [string[]] $IloAddress)
Import-Module HPEiLOCmdlets
$adminPass = {V}
foreach ($ilo in $IloAddress) {
    $conn = Connect-HPEiLO -IP $ilo -Username Administrator -Password $adminPass
    Get-HPEiLOUser -Connection $conn | Format-Table LoginName, UserConfigPrivilege
    Disconnect-HPEiLO -Connection $conn
}
""",
        "t20_ps_ref",
        False,
    ),
    _t(
        "docs/hardware/dell-r750.md",
        """
# Dell PowerEdge R750 — first rack-and-stack

| Item | Value |
|------|-------|
| Service tag | `{V}` |
| Second PSU tag | `{V2}` |
| iDRAC user | root |
| iDRAC password | sticker on the pull-out tag (factory default), changed by `idrac-setup.sh` |
| Rack | FRA-B-14, U22-U23 |

Check the warranty at https://www.dell.com/support with the service tag.
""",
        "t20_service_tag",
        False,
    ),
    _t(
        "docs/hardware/supermicro-bmc.md",
        """
# Supermicro X12 BMC

Factory default BMC login on boards shipped before 2020 is `ADMIN` / `{V}`; newer boards print a
unique password on the label. `bmc-harden.yml` replaces it on first contact.

```bash
ipmitool -I lanplus -H 10.41.14.9 -U ADMIN -P {V} user list 1
```
""",
        "t20_factory_default",
        False,
    ),
    _t(
        "scripts/bmc/ipmi-snmp-trap.conf",
        """
# /etc/snmp/snmptrapd.conf on the NOC collector
authCommunity log,execute,net {V}
traphandle default /usr/local/bin/ipmi-trap-to-alertmanager
disableAuthorization no
""",
        "t20_snmp_comm",
        True,
    ),
]
# ---------------------------------------------------------------- FreeIPA / LDAP
TEMPLATES += [
    _t(
        "ipa/bootstrap/ipa-replica.sh",
        """
#!/usr/bin/env bash
# Promote ipa02 to replica; run as root on ipa02 after enrolment
set -euo pipefail
echo '{V}' | kinit admin
ipa-replica-install --setup-ca --setup-dns --forwarder 10.40.0.53 \\
  --principal admin --admin-password '{V}' --unattended
ipa-healthcheck --failures-only
""",
        "t20_pw",
        True,
    ),
    _t(
        "ipa/bootstrap/enroll-host.sh",
        """
#!/bin/sh
# Enrol a new host with a one-time password created by `ipa host-add --random`
ipa-client-install --unattended \\
  --domain hhx.net --realm HHX.NET --server ipa01.mgmt.hhx.net \\
  --password '{V}' --mkhomedir --no-ntp
""",
        "t20_sh_ref",
        False,
    ),
    _t(
        "ipa/ldif/sysaccounts.ldif",
        """
dn: uid=sssd-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net
changetype: add
objectclass: account
objectclass: simplesecurityobject
uid: sssd-bind
userPassword: {V}
passwordExpirationTime: 20380119031407Z
nsIdleTimeout: 0
""",
        "t20_pw",
        True,
    ),
    _t(
        "ipa/ldif/sysaccounts-export.ldif",
        """
# exported from ipa01 with ldapsearch -o ldif-wrap=no (hashes only, no clear text)
dn: uid=sssd-bind,cn=sysaccounts,cn=etc,dc=hhx,dc=net
objectClass: account
objectClass: simplesecurityobject
uid: sssd-bind
userPassword:: {V}
""",
        "t20_pbkdf2_ldap",
        False,
    ),
    _t(
        "ipa/openldap/slapd.d/olcDatabase.ldif",
        """
dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: dc=legacy,dc=hhx,dc=net
olcRootDN: cn=admin,dc=legacy,dc=hhx,dc=net
olcRootPW: {V}
olcDbDirectory: /var/lib/ldap
""",
        "t20_ssha",
        False,
    ),
    _t(
        "ipa/openldap/ldap.conf",
        """
# /etc/openldap/ldap.conf on the legacy mail relays
BASE    dc=legacy,dc=hhx,dc=net
URI     ldaps://ldap-legacy.mgmt.hhx.net
TLS_CACERT /etc/openldap/certs/hhx-root-ca.pem
BINDDN  cn=relay,ou=services,dc=legacy,dc=hhx,dc=net
BINDPW  {V}
""",
        "t20_pw",
        True,
    ),
    _t(
        "ipa/docs/LDAP-Bootstrap.de.md",
        """
# LDAP-Bootstrap (FreeIPA)

1. `ipa-server-install` auf `ipa01` ausführen (siehe `vagrant/ipa-lab`).
2. Das Directory-Manager-Passwort steht **nicht** hier, sondern im Tresor unter `Infra/ipa-dm`.
3. Im Installer erscheint die Abfrage „{V}“ – dort das Passwort aus dem Tresor einfügen.
4. Danach `ipa-healthcheck` laufen lassen.

Bei Fehlern: #infra-provisioning im Slack.
""",
        "t20_i18n",
        False,
    ),
]

# ---------------------------------------------------------------- Proxmox / LXC
TEMPLATES += [
    _t(
        "proxmox/scripts/pve-backup-prune.py",
        """
#!/usr/bin/env python3
from proxmoxer import ProxmoxAPI

pve = ProxmoxAPI(
    "pve-a01.mgmt.hhx.net",
    user="backup@pve",
    token_name="prune",
    token_value="{V}",
    verify_ssl="/etc/ssl/certs/hhx-root-ca.pem",
)

for node in pve.nodes.get():
    for vol in pve.nodes(node["node"]).storage("pbs-hallb").content.get():
        print(node["node"], vol["volid"], vol.get("size"))
""",
        "t20_proxmox_secret",
        True,
    ),
    _t(
        "proxmox/lxc/105.conf",
        """
arch: amd64
cores: 2
features: nesting=1
hostname: ns-internal
memory: 1024
net0: name=eth0,bridge=vmbr1,firewall=1,hwaddr={V},ip=10.40.0.53/24,gw=10.40.0.1,type=veth
onboot: 1
ostype: debian
rootfs: ceph-ct:vm-105-disk-0,size=8G
swap: 512
unprivileged: 1
""",
        "t20_mac",
        False,
    ),
    _t(
        "proxmox/qemu-server/9040.conf",
        """
agent: 1
boot: order=scsi0
cores: 2
ide2: ceph-vm:vm-9040-cloudinit,media=cdrom
ciuser: provision
cipassword: {V}
memory: 2048
name: tmpl-debian12
net0: virtio=BC:24:11:5A:0E:31,bridge=vmbr0
scsi0: ceph-vm:base-9040-disk-0,size=12G
smbios1: uuid=0b3d1f6e-4a2c-4d5e-8f9a-1b2c3d4e5f60
template: 1
""",
        "t20_sha512crypt",
        False,
    ),
    _t(
        "proxmox/storage.cfg",
        """
dir: local
	path /var/lib/vz
	content iso,vztmpl,backup

rbd: ceph-vm
	content images
	krbd 0
	pool vms

pbs: pbs-hallb
	datastore hallb
	server pbs01.mgmt.hhx.net
	content backup
	fingerprint {V}
	username backup@pbs
""",
        "t20_pbs_fpr",
        False,
    ),
    _t(
        "proxmox/priv/storage/pbs-hallb.pw",
        """
{V}
""",
        "t20_pw",
        True,
    ),
    _t(
        "proxmox/pve-exporter.yml",
        """
default:
  user: monitoring@pve
  token_name: exporter
  token_value: "{V}"
  verify_ssl: false
""",
        "t20_proxmox_secret",
        True,
    ),
]

# ---------------------------------------------------------------- OpenStack
TEMPLATES += [
    _t(
        "openstack/clouds.yaml",
        """
clouds:
  hhx-fra1:
    auth:
      auth_url: https://keystone.cloud.hhx.net:5000/v3
      username: svc-provision
      password: "{V}"
      project_name: shared-hosting
      user_domain_name: Default
      project_domain_name: Default
    region_name: fra1
    interface: public
    identity_api_version: 3
""",
        "t20_pw",
        True,
    ),
    _t(
        "openstack/clouds.yaml.sample",
        """
clouds:
  hhx-fra1:
    auth:
      auth_url: https://keystone.cloud.hhx.net:5000/v3
      username: <your-ldap-user>
      password: "{V}"
      project_name: shared-hosting
      user_domain_name: hhx
      project_domain_name: Default
    region_name: fra1
""",
        "t20_placeholder",
        False,
    ),
    _t(
        "openstack/secure.yaml",
        """
clouds:
  hhx-fra1-ci:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.cloud.hhx.net:5000/v3
      application_credential_id: "4f2b9c71d8e04a6b8e1f3c5d7a9b0e12"
      application_credential_secret: "{V}"
""",
        "t20_app_cred",
        True,
    ),
    _t(
        "openstack/shared-hosting-openrc.sh",
        """
#!/usr/bin/env bash
export OS_AUTH_URL=https://keystone.cloud.hhx.net:5000/v3
export OS_PROJECT_ID={V}
export OS_PROJECT_NAME="shared-hosting"
export OS_USER_DOMAIN_NAME="Default"
export OS_USERNAME="${USER}"
echo "Please enter your OpenStack Password for project $OS_PROJECT_NAME as user $OS_USERNAME: "
read -sr OS_PASSWORD_INPUT
export OS_PASSWORD=$OS_PASSWORD_INPUT
export OS_REGION_NAME="fra1"
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
""",
        "t20_os_id",
        False,
    ),
    _t(
        "openstack/admin-openrc.sh",
        """
export OS_USERNAME=admin
export OS_PASSWORD='{V}'
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_AUTH_URL=https://keystone.cloud.hhx.net:5000/v3
export OS_IDENTITY_API_VERSION=3
""",
        "t20_pw",
        True,
    ),
    _t(
        "openstack/kolla/fernet-keys/0",
        """
{V}
""",
        "t20_fernet_key",
        True,
    ),
    _t(
        "openstack/kolla/passwords.yml",
        """
---
database_password: {V}
keystone_admin_password: {V2}
nova_database_password: {V3}
rabbitmq_password: {V4}
horizon_secret_key: {V5}
""",
        "t20_hex_secret",
        True,
    ),
    _t(
        "openstack/kolla/globals.yml",
        """
---
kolla_base_distro: "rocky"
openstack_release: "2024.1"
kolla_internal_vip_address: "10.70.0.250"
network_interface: "bond0"
neutron_external_interface: "bond1"
enable_cinder: "yes"
enable_cinder_backend_ceph: "yes"
ceph_cinder_user: "cinder"
ceph_cluster_fsid: "{V}"
enable_octavia: "yes"
octavia_amp_image_owner_id: "{V2}"
""",
        "t20_uuid",
        False,
    ),
    _t(
        "openstack/scripts/token-debug.sh",
        """
#!/bin/sh
# pasted from a debugging session with the glance team
curl -s -H "X-Auth-Token: {V}" \\
  https://glance.cloud.hhx.net:9292/v2/images?limit=5 | jq '.images[].name'
""",
        "t20_fernet_token",
        True,
    ),
]

# ---------------------------------------------------------------- CI that builds images
TEMPLATES += [
    _t(
        ".github/workflows/packer-images.yml",
        """
name: packer-images
on:
  schedule:
    - cron: "0 3 * * 1"
  workflow_dispatch:
jobs:
  build:
    runs-on: [self-hosted, build-vlan]
    env:
      PKR_VAR_vsphere_password: {V}
      PKR_VAR_ssh_password: {V2}
    steps:
      - uses: actions/checkout@v4
      - uses: hashicorp/setup-packer@v3
      - run: packer init packer/vsphere/rocky9
      - run: packer build -var-file=packer/vsphere/rocky9/variables.auto.pkrvars.hcl packer/vsphere/rocky9
""",
        "t20_ci_ref",
        False,
    ),
    _t(
        ".gitlab-ci.yml",
        """
stages: [validate, build, publish]

variables:
  PACKER_LOG: "1"
  REGISTRY_USER: hhx-image-bot
  REGISTRY_TOKEN: "{V}"

build:debian12:
  stage: build
  image: hashicorp/packer:1.11
  tags: [build-vlan]
  script:
    - packer init packer/proxmox/ubuntu2404
    - packer build packer/proxmox/ubuntu2404
    - echo "$REGISTRY_TOKEN" | docker login registry.hhx.net -u "$REGISTRY_USER" --password-stdin
""",
        "t20_gitlab",
        True,
    ),
    _t(
        "ci/Jenkinsfile",
        """
pipeline {
  agent { label 'packer' }
  environment {
    VSPHERE_PASSWORD = credentials('vsphere-svc-packer')
    NETBOX_TOKEN     = '{V}'
  }
  stages {
    stage('Build') {
      steps {
        sh 'packer build -var vsphere_password=$VSPHERE_PASSWORD packer/windows/win2022.json'
      }
    }
    stage('Register') {
      steps {
        sh 'python3 ci/register_template.py --netbox-token $NETBOX_TOKEN'
      }
    }
  }
}
""",
        "t20_netbox_token",
        True,
    ),
    _t(
        "ci/Jenkinsfile.release",
        """
pipeline {
  agent { label 'packer' }
  environment {
    VSPHERE_PASSWORD = credentials('vsphere-svc-packer')
    SLACK_WEBHOOK    = credentials('slack-infra-builds')
  }
  stages {
    stage('Build') {
      steps {
        sh 'packer build -var vsphere_password={V} packer/windows/win2022.json'
      }
    }
  }
}
""",
        "t20_ci_ref",
        False,
    ),
    _t(
        "ci/Makefile",
        """
PACKER ?= packer
VARS   := packer/vsphere/rocky9/variables.auto.pkrvars.hcl
export DOCKERHUB_TOKEN := {V}

.PHONY: rocky9 push

rocky9:
	$(PACKER) build -var-file=$(VARS) packer/vsphere/rocky9

push:
	echo "$(DOCKERHUB_TOKEN)" | docker login -u hhxbuild --password-stdin
	docker push hhx/pxe-tools:latest
""",
        "t20_docker_pat",
        True,
    ),
    _t(
        "ci/Dockerfile.pxe-tools",
        """
FROM rockylinux:9-minimal
LABEL org.opencontainers.image.source="https://git.hhx.net/infra/provisioning"
RUN microdnf install -y ipmitool syslinux-tftpboot ipxe-bootimgs && microdnf clean all
ARG NETBOX_URL=https://netbox.mgmt.hhx.net/api
ARG NETBOX_TOKEN={V}
ENV NETBOX_URL=$NETBOX_URL
COPY ci/register_template.py /usr/local/bin/register-template
ENTRYPOINT ["/usr/local/bin/register-template"]
""",
        "t20_netbox_token",
        True,
    ),
    _t(
        "ci/Dockerfile.ansible",
        """
FROM python:3.12-slim
RUN pip install --no-cache-dir ansible-core==2.17.1 dellemc-openmanage hvac
# checksum of the pinned collection tarball
ENV OPENMANAGE_SHA256={V}
COPY ansible /ansible
WORKDIR /ansible
ENTRYPOINT ["ansible-playbook"]
""",
        "t20_iso_sum",
        False,
    ),
    _t(
        "ci/.npmrc",
        """
registry=https://registry.npmjs.org/
@hhx:registry=https://npm.pkg.github.com/
//npm.pkg.github.com/:_authToken={V}
always-auth=true
""",
        "t20_github",
        True,
    ),
    _t(
        "ci/register_template.py",
        """
#!/usr/bin/env python3
import os
import sys

import pynetbox

nb = pynetbox.api("https://netbox.mgmt.hhx.net", token={V})
name = sys.argv[1]
nb.virtualization.virtual_machines.create(name=name, status="planned", cluster=7)
print("registered", name, "in NetBox as", os.environ.get("BUILD_TAG", "local"))
""",
        "t20_env_py",
        False,
    ),
]
# ---------------------------------------------------------------- networking, DNS, clusters
TEMPLATES += [
    _t(
        "network/wireguard/wg-mgmt.conf",
        """
# management VPN on bastion01 (wg-quick)
[Interface]
Address = 10.99.0.1/24
ListenPort = 51820
PrivateKey = {V}
PostUp = iptables -A FORWARD -i %i -j ACCEPT
PostDown = iptables -D FORWARD -i %i -j ACCEPT

[Peer]
# noc-laptop-07
PublicKey = Zq3Y1z8mR0kB2eV7uT4nP6sH9wC5xL1aD3fG8jK0bN4=
AllowedIPs = 10.99.0.7/32
""",
        "t20_wg_priv",
        True,
    ),
    _t(
        "network/wireguard/peers.md",
        """
# WireGuard peers on bastion01

| Peer | Address | Public key |
|------|---------|------------|
| noc-laptop-07 | 10.99.0.7 | `{V}` |
| noc-laptop-09 | 10.99.0.9 | `{V2}` |
| bastion02 | 10.99.0.2 | `{V3}` |

Private keys never leave the device; generate them with `wg genkey | tee privatekey | wg pubkey`.
""",
        "t20_wg_pub",
        False,
    ),
    _t(
        "network/bind/keys/ddns-provision.key",
        """
key "ddns-provision" {
	algorithm hmac-sha256;
	secret "{V}";
};
""",
        "t20_tsig_secret",
        True,
    ),
    _t(
        "network/bind/named.conf.local",
        """
include "/etc/bind/keys/ddns-provision.key";

zone "mgmt.hhx.net" {
	type primary;
	file "/var/lib/bind/db.mgmt.hhx.net";
	update-policy { grant ddns-provision zonesub ANY; };
};

// DS record digest of the signed zone, for the registrar form
// mgmt.hhx.net. IN DS 48291 13 2 {V}
""",
        "t20_iso_sum",
        False,
    ),
    _t(
        "network/snmp/librenms-config.php",
        """
<?php
// LibreNMS config.php fragment, polling the hall switches
$config['snmp']['community'] = ['{V}'];
$config['auth_mechanism'] = 'ldap';
$config['auth_ldap_server'] = 'ldaps://ipa01.mgmt.hhx.net';
$config['auth_ldap_binduser'] = 'librenms-bind';
$config['nets'][] = '10.42.0.0/16';
$config['discovery_modules']['arp-table'] = true;
""",
        "t20_snmp_comm",
        True,
    ),
    _t(
        "k8s/k3s/server-config.yaml",
        """
# /etc/rancher/k3s/config.yaml on k3s-srv-01
cluster-init: true
tls-san:
  - k3s-api.internal.hhx.net
token: {V}
disable:
  - traefik
node-taint:
  - "CriticalAddonsOnly=true:NoExecute"
""",
        "t20_k3s_token",
        True,
    ),
    _t(
        "k8s/rancher/import-cluster.sh",
        """
#!/bin/sh
# registers the hall-C k3s cluster in Rancher
RANCHER_URL=https://rancher.mgmt.hhx.net
RANCHER_TOKEN={V}
curl -s -u "$RANCHER_TOKEN" "$RANCHER_URL/v3/clusters?name=hallc" | jq -r '.data[0].id'
""",
        "t20_rancher_token",
        True,
    ),
    _t(
        "k8s/helm/netbox-values.yaml",
        """
superuser:
  name: admin
  email: noc@hhx.net
  existingSecret: netbox-superuser
existingSecret: netbox-secret-key
postgresql:
  enabled: false
externalDatabase:
  host: pg01.mgmt.hhx.net
  database: netbox
  username: netbox
  existingSecretName: {V}
  existingSecretKey: password
""",
        "t20_secret_name",
        False,
    ),
    _t(
        "k8s/helm/external-dns-values.yaml",
        """
provider: cloudflare
cloudflare:
  apiToken: "{V}"
  proxied: false
domainFilters:
  - hhx.net
policy: upsert-only
txtOwnerId: hhx-k3s-hallc
""",
        "t20_cf_token",
        True,
    ),
    _t(
        "network/tailscale/subnet-router.sh",
        """
#!/bin/sh
# subnet router so the on-call laptop reaches the BMC VLAN without the VPN concentrator
curl -fsSL https://tailscale.com/install.sh | sh
tailscale up --authkey={V} --advertise-routes=10.41.0.0/16 --hostname=bmc-router-hallb
""",
        "t20_tskey",
        True,
    ),
    _t(
        "consul/config/agent.hcl",
        """
datacenter = "fra-hallb"
data_dir   = "/opt/consul"
encrypt    = "{V}"
retry_join = ["consul01.mgmt.hhx.net", "consul02.mgmt.hhx.net"]

acl {
  enabled        = true
  default_policy = "deny"
}
""",
        "t20_b64_secret",
        True,
    ),
    _t(
        "consul/config/acl.hcl",
        """
acl {
  enabled = true
  tokens {
    agent   = "{V}"
    default = ""
  }
}
""",
        "t20_consul_token",
        True,
    ),
    _t(
        "consul/README.md",
        """
# Consul

`consul acl token list` prints accessor ids, which are safe to share in tickets:

```
AccessorID:       {V}
SecretID:         <hidden>
Description:      agent token hv-b-07
```

Never paste a SecretID.
""",
        "t20_uuid",
        False,
    ),
]

# ---------------------------------------------------------------- alerting / chatops glue
TEMPLATES += [
    _t(
        "ops/alerting/alertmanager.yml",
        """
route:
  receiver: infra-slack
  routes:
    - matchers: [severity="page"]
      receiver: pagerduty-infra
receivers:
  - name: infra-slack
    slack_configs:
      - api_url: "{V}"
        channel: "#infra-alerts"
  - name: pagerduty-infra
    pagerduty_configs:
      - routing_key_file: /etc/alertmanager/pd-routing-key
""",
        "t20_slack_webhook",
        True,
    ),
    _t(
        "ops/alerting/pagerduty.env",
        """
PD_ROUTING_KEY={V}
PD_SERVICE=bare-metal-provisioning
DD_API_KEY={V2}
""",
        "t20_pd_key",
        True,
    ),
    _t(
        "ops/alerting/notify_build.go",
        """
package alerting

import (
\t"bytes"
\t"net/http"
)

const buildWebhook = "{V}"

// NotifyBuild posts the result of an image build to the #image-builds channel.
func NotifyBuild(msg string) error {
\tbody := []byte(`{"content":"` + msg + `"}`)
\t_, err := http.Post(buildWebhook, "application/json", bytes.NewReader(body))
\treturn err
}
""",
        "t20_discord_webhook",
        True,
    ),
    _t(
        "ops/alerting/mailer.toml",
        """
[smtp]
host = "smtp.sendgrid.net"
port = 587
username = "apikey"
password = "{V}"
from = "provisioning@hhx.net"

[report]
recipients = ["noc@hhx.net"]
""",
        "t20_sendgrid",
        True,
    ),
    _t(
        "ops/alerting/datadog.yaml",
        """
# /etc/datadog-agent/datadog.yaml on the hypervisors
api_key: {V}
site: datadoghq.eu
hostname_fqdn: true
tags:
  - hall:b
  - role:hypervisor
""",
        "t20_dd_key",
        True,
    ),
    _t(
        "ops/alerting/datadog.yaml.tmpl",
        """
# /etc/datadog-agent/datadog.yaml, rendered by consul-template
api_key: {{ with secret "kv/data/datadog" }}{{ .Data.data.api_key }}{{ end }}
site: datadoghq.eu
# dashboard of the provisioning pipeline: https://app.datadoghq.eu/dashboard/{V}
tags:
  - hall:b
""",
        "t20_dd_dash",
        False,
    ),
]

# ---------------------------------------------------------------- cloud credentials / keys
TEMPLATES += [
    _t(
        "ops/aws/credentials",
        """
[default]
region = eu-central-1

[hhx-image-publish]
{V}
region = eu-central-1
""",
        "t20_aws_ini_pair",
        True,
    ),
    _t(
        "ops/aws/image-publish.env",
        """
# sourced by ci/publish-ami.sh
{V}
AWS_DEFAULT_REGION=eu-central-1
AMI_SHARE_ACCOUNTS=713489215062,204377128560
""",
        "t20_aws_env_pair",
        True,
    ),
    _t(
        "ops/gcp/dns-sync-sa.json",
        """
{
  "type": "service_account",
  "project_id": "hhx-dns-sync",
  "private_key_id": "3c1f0e8a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e",
  "private_key": "{V}",
  "client_email": "dns-sync@hhx-dns-sync.iam.gserviceaccount.com",
  "client_id": "104883712209117364522",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "t20_gcp_sa_key",
        True,
    ),
    _t(
        "ops/keys/bastion-deploy",
        """
{V}
""",
        "t20_ssh_key",
        True,
    ),
    _t(
        "ops/keys/bastion-deploy.pub",
        """
{V}
""",
        "t20_ssh_pub",
        False,
    ),
    _t(
        "ops/keys/hhx-root-ca.pem",
        """
{V}
""",
        "t20_cert",
        False,
    ),
    _t(
        "ops/keys/redfish-client.key",
        """
{V}
""",
        "t20_ec_key",
        True,
    ),
    _t(
        "ops/keys/vault-transit.pub.pem",
        """
# public half of the transit signing key used for image attestations
{V}
""",
        "t20_pubkey_pem",
        False,
    ),
    _t(
        "ops/keys/ops-gpg.asc.md",
        """
# Ops team GPG keys (for encrypted pillar data)

| Owner | Fingerprint |
|-------|-------------|
| noc@hhx.net | `{V}` |
| salt-master | `{V2}` |

Import with `gpg --recv-keys <fingerprint>`.
""",
        "t20_gpg_fpr",
        False,
    ),
]
# ---------------------------------------------------------------- runbooks, guides, chat, notebooks
TEMPLATES += [
    _t(
        "docs/runbooks/rack-and-stack.md",
        """
# Runbook: rack-and-stack a new hypervisor

1. Scan the asset label and the data-centre access badge used for the hall visit into the ticket:
   badge `{V}`, escort badge `{V2}`.
2. Cable BMC to the `bmc` VLAN (41), data to the LACP pair.
3. Boot from PXE, choose *Rocky 9 hypervisor*.
4. Run `ansible-playbook playbooks/bmc-rotate.yml -l bmc-<host>`.
""",
        "t20_badge",
        False,
    ),
    _t(
        "docs/runbooks/install-guide-proxmox.md",
        """
# Install guide: Proxmox VE node

## Root password

The installer asks for a root password and an e-mail. Use the value from 1Password
(`Infra / pve-root`), **not** the one shown in the vendor's screenshots:

> Password: `{V}`  *(screenshot from the Proxmox docs)*

## API token

Create `terraform@pve!provider` with *Privilege Separation* off and store the secret in Vault.
""",
        "t20_factory_default",
        False,
    ),
    _t(
        "docs/runbooks/bmc-recovery.fr.md",
        """
# Procédure : récupération d'un BMC bloqué

1. Se connecter au bastion `bastion01.mgmt.hhx.net`.
2. Réinitialiser le BMC avec `ipmitool mc reset cold`.
3. Le mot de passe root temporaire pour le hall C est `{V}` (à changer après l'intervention).
4. Vérifier l'accès web : https://bmc-hv-c-04.mgmt.hhx.net
5. Noter l'intervention dans le ticket.
""",
        "t20_pw",
        True,
    ),
    _t(
        "docs/runbooks/bmc-recovery.es.md",
        """
# Procedimiento: recuperar un BMC bloqueado

1. Conectarse al bastión `bastion01.mgmt.hhx.net`.
2. Reiniciar el BMC con `ipmitool mc reset cold`.
3. La contraseña de root está en Vault (`kv/bmc/root`); en la pantalla verás el texto «{V}».
4. Registrar la intervención en el ticket.
""",
        "t20_i18n",
        False,
    ),
    _t(
        "docs/runbooks/vsphere-template-refresh.de.md",
        """
# vSphere-Vorlagen aktualisieren

Die Vorlagen werden jeden Montag von `packer-images` gebaut. Manuell:

```bash
export PKR_VAR_vsphere_password={V}
packer build packer/vsphere/rocky9
```

Das Passwort des Dienstkontos `svc-packer` liegt im Tresor, nicht im Repository.
""",
        "t20_sh_ref",
        False,
    ),
    _t(
        "docs/runbooks/ldap-connection-strings.md",
        """
# Connection strings in the docs

Examples in this guide use documentation hosts only, e.g.

    {V}

Replace the host and credentials with the ones from Vault when you follow along.
""",
        "t20_doc_uri",
        False,
    ),
    _t(
        "docs/runbooks/db-provisioning.md",
        """
# DB provisioning for the hosting panel

The panel connects with:

```
DATABASE_URL=mysql://panel:{V}@db-panel01.mgmt.hhx.net:3306/hosting_panel
```

Rotate with `ansible-playbook playbooks/create-db-users.yml` after changing the vault value.
""",
        "t20_url_pw",
        True,
    ),
    _t(
        "docs/runbooks/password-policy.md",
        """
# Password policy for infrastructure accounts

| Setting | Value |
|---------|-------|
| BMC password max age (days) | {V} |
| Minimum length | 20 |
| Break-glass rotation after use | yes |
| Storage | Vault `kv/bmc/*`, 1Password vault *Infra* |
""",
        "t20_policy",
        False,
    ),
    _t(
        "docs/installer/strings.de.po",
        """
# German installer translations (HHX custom firstboot)
msgid "Set root password"
msgstr "{V}"

msgid "Passwords do not match"
msgstr "Die Passwörter stimmen nicht überein"

msgid "Continue"
msgstr "Weiter"
""",
        "t20_i18n",
        False,
    ),
    _t(
        "docs/installer/firstboot_strings.json",
        """
{
  "root_password_title": "{V}",
  "root_password_hint": "{V2}",
  "bmc_password_label": "BMC password",
  "submit": "OK"
}
""",
        "t20_i18n",
        False,
    ),
    _t(
        "docs/chat/infra-provisioning-2024-03.json",
        """
[
  {
    "type": "message",
    "user": "U04MKQ2P1",
    "ts": "1710234811.004300",
    "text": "packer build on vc01 fails with 401, did someone rotate svc-packer?"
  },
  {
    "type": "message",
    "user": "U02HHX7QZ",
    "ts": "1710234903.004500",
    "text": "yes, new one is {V} , updating the vault entry now"
  },
  {
    "type": "message",
    "user": "U04MKQ2P1",
    "ts": "1710235010.004700",
    "text": "thx, works"
  }
]
""",
        "t20_pw",
        True,
    ),
    _t(
        "docs/chat/infra-provisioning-2024-04.json",
        """
[
  {
    "type": "message",
    "user": "U04MKQ2P1",
    "ts": "1712830011.000100",
    "text": "where is the BMC password for hall C?"
  },
  {
    "type": "message",
    "user": "U02HHX7QZ",
    "ts": "1712830102.000200",
    "text": "in vault, `vault kv get kv/bmc/root` — here it's {V} in the channel, please never paste it"
  }
]
""",
        "t20_redacted",
        False,
    ),
    _t(
        "notebooks/fleet-inventory.ipynb",
        """
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pynetbox\\n",
    "nb = pynetbox.api(\\"https://netbox.mgmt.hhx.net\\", token=\\"{V}\\")\\n",
    "devices = list(nb.dcim.devices.filter(site=\\"fra-hallb\\", role=\\"hypervisor\\"))\\n",
    "len(devices)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t20_netbox_token",
        True,
    ),
    _t(
        "notebooks/bmc-audit.ipynb",
        """
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os, requests\\n",
    "auth = (\\"hhx-monitor\\", {V})\\n",
    "r = requests.get(\\"https://bmc-hv-b-01.mgmt.hhx.net/redfish/v1/AccountService/Accounts\\", auth=auth, timeout=10)\\n",
    "r.json()[\\"Members@odata.count\\"]"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t20_env_nb",
        False,
    ),
    _t(
        "notebooks/serials.ipynb",
        """
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["SMBIOS UUIDs reported by the hall B hypervisors"]
  },
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hv-b-01 {V}\\n", "hv-b-02 {V2}\\n"]}],
   "source": ["for h, u in uuids.items(): print(h, u)"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t20_smbios_uuid",
        False,
    ),
]

# ---------------------------------------------------------------- more look-alikes in provisioning files
TEMPLATES += [
    _t(
        "provisioning/firstboot/machine-id-reset.sh",
        """
#!/bin/sh
# templates must not share a machine-id; this one leaked into tmpl-rocky9-2024.05:
#   {V}
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
ln -s /etc/machine-id /var/lib/dbus/machine-id
""",
        "t20_machine_id",
        False,
    ),
    _t(
        "storage/iscsi/initiators.yml",
        """
---
iscsi_targets:
  - name: {V}
    portal: 10.80.0.10
    chap_user: hv-b-initiator
    chap_password: "{{ vault_iscsi_chap }}"
  - name: {V2}
    portal: 10.80.0.11
""",
        "t20_iqn",
        False,
    ),
    _t(
        "storage/ceph/ceph.conf",
        """
[global]
fsid = {V}
mon_host = [v2:10.80.1.11:3300/0,v1:10.80.1.11:6789/0] [v2:10.80.1.12:3300/0,v1:10.80.1.12:6789/0]
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
public_network = 10.80.1.0/24
""",
        "t20_uuid",
        False,
    ),
    _t(
        "storage/ceph/client.admin.keyring.md",
        """
# Where is the Ceph admin keyring?

The keyring is only on the monitors: `{V}`. Copy it to a client with `ceph auth get client.admin`,
never commit it. Clients in this repo use `client.libvirt` from Vault.
""",
        "t20_secret_path",
        False,
    ),
    _t(
        "provisioning/windows/join-domain.ps1",
        """
param([string]$DomainPassword = {V})
$cred = New-Object System.Management.Automation.PSCredential(
    "HHX\\svc-domainjoin",
    (ConvertTo-SecureString $DomainPassword -AsPlainText -Force)
)
Add-Computer -DomainName "corp.hhx.net" -OUPath "OU=Build,OU=Servers,DC=corp,DC=hhx,DC=net" -Credential $cred -Restart
""",
        "t20_ps_ref",
        False,
    ),
    _t(
        "provisioning/windows/Install-Kms.ps1",
        """
# activate against the internal KMS host with the published client setup key
$gvlk = "{V}"
cscript //nologo C:\\Windows\\System32\\slmgr.vbs /ipk $gvlk
cscript //nologo C:\\Windows\\System32\\slmgr.vbs /skms kms.corp.hhx.net:1688
cscript //nologo C:\\Windows\\System32\\slmgr.vbs /ato
""",
        "t20_gvlk",
        False,
    ),
    _t(
        "provisioning/windows/sysprep/unattend-test.xml",
        """
<?xml version="1.0" encoding="utf-8"?>
<!-- used only by the Pester tests; the password is a fixed fake -->
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
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
        "t20_fake",
        False,
    ),
    _t(
        "terraform/modules/vsphere-vm/variables.tf",
        """
variable "vsphere_password" {
  type        = string
  sensitive   = true
  description = "password of the vSphere service account"
  default     = "{V}"
}

variable "vm_template" {
  type    = string
  default = "tmpl-rocky9-2024.06"
}
""",
        "t20_placeholder",
        False,
    ),
    _t(
        "terraform/aws/edge/ssm.tf",
        """
resource "aws_ssm_parameter" "ipmi" {
  name  = "/hhx/edge/ipmi-password"
  type  = "SecureString"
  value = {V}
}

data "aws_secretsmanager_secret" "k3s" {
  arn = "arn:aws:secretsmanager:eu-central-1:713489215062:secret:edge/k3s-token-Qx7bLm"
}
""",
        "t20_tf_ref",
        False,
    ),
    _t(
        "ansible/inventories/prod/group_vars/hypervisors.yml",
        """
---
libvirt_sasl_user: libvirt-mgmt
libvirt_sasl_password: "{V}"
ceph_client_key: "{V2}"
hypervisor_cpu_model: host-passthrough
""",
        "t20_redacted",
        False,
    ),
    _t(
        "salt/pillar/ipmi/init.sls",
        """
#!jinja|yaml
ipmi:
  user: hhx-ops
  password: {V}
  api_pass: {V2}
  channel: 1
""",
        "t20_salt_ref",
        False,
    ),
    _t(
        "puppet/data/nodes/backup02.mgmt.hhx.net.eyaml",
        """
---
profile::bacula::director_password: >
    {V}
profile::bacula::storage_password: >
    {V2}
profile::bacula::pool_retention: '30 days'
""",
        "t20_eyaml",
        False,
    ),
    _t(
        "chef/data_bags/passwords/bmc.json",
        """
{
  "id": "bmc",
  "password": "{V}",
  "note": "rotated by ansible; chef only reads it via chef-vault"
}
""",
        "t20_redacted",
        False,
    ),
    _t(
        "cloud-init/openstack/web-tier/vendor-data.json",
        """
{
  "cloud-init": "#cloud-config\\nchpasswd:\\n  expire: false\\n  users:\\n    - {name: root, password: '{V}'}\\n",
  "hhx": {"tier": "web", "backup": true}
}
""",
        "t20_crypt_any",
        False,
    ),
    _t(
        "ops/aws/credentials.example",
        """
# copy to ~/.aws/credentials; the keys below are the AWS documentation examples
[hhx-image-publish]
aws_access_key_id = {V}
aws_secret_access_key = {V2}
region = eu-central-1
""",
        "t20_aws_example",
        False,
    ),
    _t(
        "ops/gcp/dns-sync-sa.json.example",
        """
{
  "type": "service_account",
  "project_id": "hhx-dns-sync",
  "private_key_id": "{V}",
  "private_key": "{V2}",
  "client_email": "dns-sync@hhx-dns-sync.iam.gserviceaccount.com"
}
""",
        "t20_placeholder",
        False,
    ),
    _t(
        "ci/github-actions/vault-login.yml",
        """
name: vault-login
on: workflow_call
jobs:
  login:
    runs-on: ubuntu-latest
    permissions:
      id-token: write
    steps:
      - uses: hashicorp/vault-action@v3
        with:
          url: https://vault.mgmt.hhx.net:8200
          method: jwt
          role: provisioning-ci
          secrets: |
            kv/data/packer vsphere_password | PKR_VAR_vsphere_password ;
          token: {V}
""",
        "t20_ci_ref",
        False,
    ),
    _t(
        "k8s/k3s/agent-config.yaml.sample",
        """
# copy to /etc/rancher/k3s/config.yaml; take the token from /var/lib/rancher/k3s/server/node-token
server: https://k3s-api.internal.hhx.net:6443
token: {V}
node-label:
  - "hhx.net/pool=general"
""",
        "t20_placeholder",
        False,
    ),
]
