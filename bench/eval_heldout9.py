"""Research computing and campus web teams of a university.

HPC job scripts and daemon configs (Slurm, PBS, Lmod, Apptainer), research data movers
(Globus, iRODS, rclone, s3cmd, Ceph, MinIO), research code (notebooks, R, MATLAB, Julia,
Fortran namelists, Stata/SAS, Snakemake/Nextflow, conda), LIMS and instrument bridges,
legacy campus web (PHP, Drupal, WordPress, Moodle, Perl CGI, Apache auth, Shibboleth, CAS),
identity (FreeRADIUS, eduroam, Kerberos, LDAP), mail (Postfix, Mailman, fetchmail, mutt,
msmtp), backups (restic, borg, duplicity), lab automation (Ansible, Salt), thesis CI and
course material with sample credentials; look-alikes are the hashes, references,
placeholders, ids, checksums and public keys that sit in the same files.
"""

from __future__ import annotations

import base64
import string

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits


class Heldout9Values(evalset.Values):
    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "fjord",
            "lichen",
            "basalt",
            "quokka",
            "zephyr",
            "sorrel",
            "obsidian",
            "heron",
            "tamarack",
            "cairn",
        ]
        self.users = [
            "hpcadmin",
            "slurm",
            "labsvc",
            "webteam",
            "moodle",
            "ldapbind",
            "backup",
            "irods",
        ]

    # -- positives ----------------------------------------------------------------
    def h9_password(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return (
                self.pick(self.words).capitalize()
                + str(self.rng.randrange(1990, 2031))
                + self.pick(["!", "#", "%", "@", "?"])
            )
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(11, 17), ALNUM + "!#%^*-_.@"
            )
        if shape == 2:
            return (
                self.pick(self.words)
                + "."
                + self.pick(self.words).capitalize()
                + self.s(2, string.digits)
            )
        if shape == 3:
            return self.s(16, ALNUM)
        return self.pick(self.words).upper()[:4] + "-" + self.s(4, string.digits) + "-lab"

    def h9_weak(self) -> str:
        return self.pick(
            [
                self.pick(self.words) + "123",
                self.pick(self.words).capitalize() + "1",
                "Welcome" + str(self.rng.randrange(2018, 2026)),
                "research" + self.s(2, string.digits),
                "letmein" + self.pick(["", "1", "!"]),
                "student" + self.s(3, string.digits),
                self.pick(self.words) + self.pick(self.words),
                "Passw0rd" + self.pick(["", "!", "1"]),
            ]
        )

    def h9_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(12, 21))

    def h9_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(self.rng.choice([32, 40, 48]))
        if shape == 1:
            return self.s(self.rng.choice([32, 40, 64]), HEX)
        return base64.b64encode(self.rng.randbytes(self.rng.choice([24, 32]))).decode()

    def h9_hex(self) -> str:
        return self.s(self.rng.choice([32, 40, 64]), HEX)

    def h9_b64(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def h9_urlsafe(self) -> str:
        return (
            base64.urlsafe_b64encode(self.rng.randbytes(self.rng.choice([32, 48, 55])))
            .decode()
            .rstrip("=")
        )

    def h9_ceph_key(self) -> str:
        raw = (
            b"\x01\x00"
            + self.rng.randbytes(4)
            + self.rng.randbytes(4)
            + b"\x10\x00"
            + self.rng.randbytes(16)
        )
        return base64.b64encode(raw).decode()

    def h9_aws_secret(self) -> str:
        return self.aws_secret()

    def h9_aws_id(self) -> str:
        return self.aws_id()

    def h9_minio_secret(self) -> str:
        return self.s(self.rng.choice([32, 40]), ALNUM)

    def h9_radius(self) -> str:
        return self.pick(
            [
                "testing123",
                self.s(20, ALNUM),
                self.pick(self.words) + self.s(4, string.digits) + self.pick(self.words),
                self.s(1, string.ascii_letters) + self.s(23, ALNUM + "#%^*-_"),
            ]
        )

    def h9_passphrase(self) -> str:
        words = [self.pick(self.words) for _ in range(self.rng.randrange(3, 5))]
        return self.pick(["-", " ", "_"]).join(words) + self.s(2, string.digits)

    def h9_wp_salt(self) -> str:
        return self.wp_salt()

    def h9_gitlab(self) -> str:
        return self.gitlab()

    def h9_github(self) -> str:
        return self.pick([self.github(), self.github_fine()])

    def h9_slack_hook(self) -> str:
        return self.slack_webhook()

    def h9_hf(self) -> str:
        return self.huggingface()

    def h9_sendgrid(self) -> str:
        return self.sendgrid()

    def h9_rsa(self) -> str:
        return self.pem("RSA PRIVATE KEY", self.rng.randrange(8, 14))

    def h9_openssh(self) -> str:
        return self.openssh_key()

    def h9_jwt(self) -> str:
        return self.jwt()

    def h9_basic(self) -> str:
        return self.basic()

    def h9_django(self) -> str:
        return self.django_key()

    # -- look-alikes ----------------------------------------------------------------
    def h9_placeholder(self) -> str:
        return self.pick(
            [
                "<your NetID password>",
                "${RESTIC_PASSWORD}",
                "{{ vault_ldap_bind_pw }}",
                "CHANGE_ME",
                "********",
                "<password>",
                "REPLACE_WITH_KEY",
                "xxxxxxxxxxxxxxxx",
                "%(db_password)s",
                "@@DB_PASSWORD@@",
                "your-secret-key-here",
                "{{ pillar.ldap.bind_pw }}",
            ]
        )

    def h9_file_ref(self) -> str:
        return self.pick(
            [
                "/etc/restic/password.txt",
                "~/.config/borg/passphrase",
                "/run/secrets/moodle_db",
                "/etc/slurm/slurmdbd.pass",
                "/home/svc/.irods/.irodsA",
                "/etc/freeradius/secrets/eduroam.key",
                "$HOME/.globus/client_secret",
            ]
        )

    def h9_cmd_ref(self) -> str:
        return self.pick(
            [
                "pass show lab/borg",
                "secret-tool lookup service msmtp user labmail",
                "vault kv get -field=password secret/hpc/ldap",
                "gpg --quiet --decrypt ~/.msmtp-pass.gpg",
                "cat /etc/restic/password.txt",
                "op read op://Research/rclone/password",
            ]
        )

    def h9_env_ref(self) -> str:
        return self.pick(
            [
                "$DB_PASSWORD",
                "${MOODLE_DBPASS}",
                "$env:GLOBUS_CLIENT_SECRET",
                "${SLURMDB_PASS:?}",
                "$CI_JOB_TOKEN",
                "${{ secrets.S3_SECRET_KEY }}",
                "%SAS_PW%",
            ]
        )

    def h9_hash(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return "$2y$10$" + self.s(53, ALNUM + "./")
        if shape == 1:
            return "{SSHA}" + base64.b64encode(self.rng.randbytes(24)).decode()
        if shape == 2:
            return self.sha512crypt()
        if shape == 3:
            return self.argon2()
        return self.apr1()

    def h9_ssha(self) -> str:
        return "{SSHA}" + base64.b64encode(self.rng.randbytes(24)).decode()

    def h9_digest(self) -> str:
        return self.pick([self.digest(), self.s(32, HEX)])

    def h9_uuid(self) -> str:
        return self.request_id()

    def h9_orcid(self) -> str:
        return (
            f"0000-000{self.rng.randrange(1, 4)}-{self.s(4, string.digits)}-"
            f"{self.s(3, string.digits)}{self.pick(list(string.digits + 'X'))}"
        )

    def h9_pubkey(self) -> str:
        return self.ssh_public()

    def h9_cert(self) -> str:
        return self.certificate()

    def h9_vault(self) -> str:
        return self.ansible_vault()

    def h9_sops(self) -> str:
        return self.sops_value()

    def h9_text(self) -> str:
        return self.pick(
            [
                "Your NetID password has expired",
                "Passwort muss mindestens 12 Zeichen enthalten",
                "Le mot de passe est incorrect",
                "Enter your university password",
                "Contraseña caducada",
                "Incorrect password. Please contact IT Services.",
                "パスワードを変更してください",
            ]
        )

    def h9_sha(self) -> str:
        return self.git_sha()

    def h9_example(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"])

    def h9_colname(self) -> str:
        return self.pick(
            ["password_hash", "pwd_last_set", "passwd_expires", "secret_answer", "auth_token_id"]
        )

    def h9_truncated(self) -> str:
        return self.pick(
            [
                "glpat-xxxxxxxxxxxxxxxxxxxx",
                "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                "AQD...==",
                "hf_...",
                "sk-...redacted",
            ]
        )

    def h9_jobid(self) -> str:
        return self.pick(
            [self.s(7, string.digits), self.s(12, HEX), "build-" + self.s(10, string.digits)]
        )

    def h9_pubpem(self) -> str:
        return self.public_pem()

    def h9_encrypted_key(self) -> str:
        return self.encrypted_key()

    def h9_zotero(self) -> str:
        return self.s(24, ALNUM)

    # -- more look-alikes -------------------------------------------------------------
    def h9_env_ref_py(self) -> str:
        return self.pick(
            [
                "os.environ['COHORT_DB_PASSWORD']",
                "os.getenv('ZOTERO_API_KEY')",
                "os.environ.get('LIMS_SECRET_KEY')",
                "keyring.get_password('univ', 'py101_student')",
                "getpass.getpass('NetID password: ')",
            ]
        )

    def h9_r_ref(self) -> str:
        return self.pick(
            [
                'Sys.getenv("SURVEY_DB_PW")',
                'keyring::key_get("pgsurvey", "survey_rw")',
                'rstudioapi::askForPassword("Database password")',
                'config::get("db")$password',
            ]
        )

    def h9_matlab_ref(self) -> str:
        return self.pick(
            ["getenv('LIMS_DB_PW')", "getSecret('limsprod')", "input('Password: ', 's')"]
        )

    def h9_julia_ref(self) -> str:
        return self.pick(
            [
                'ENV["ZENODO_TOKEN"]',
                'get(ENV, "ZENODO_TOKEN", "")',
                'read("/run/secrets/zenodo", String)',
            ]
        )

    def h9_sas_ref(self) -> str:
        return self.pick(["&dwh_pw.", "%sysget(DWH_PASSWORD)", "&sysparm."])

    def h9_nf_ref(self) -> str:
        return self.pick(
            ["secrets.S3_ACCESS_KEY", "System.getenv('AWS_SECRET_ACCESS_KEY')", "params.s3_key"]
        )

    def h9_php_ref(self) -> str:
        return self.pick(
            [
                "getenv('DB_PASSWORD')",
                "$_ENV['MOODLE_DBPASS']",
                "$_SERVER['DRUPAL_HASH_SALT']",
                "file_get_contents('/run/secrets/drupal_db')",
                "getenv('MOODLE_DOCKER_DBPASS') ?: ''",
            ]
        )

    def h9_perl_ref(self) -> str:
        return self.pick(
            ["$ENV{'ROOMBOOK_DB_PW'}", "read_secret('/etc/roombook/db.pw')", "$cfg->{db}{password}"]
        )

    def h9_jinja_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_lab_admin_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=lab/data/ldap:bind_pw') }}",
                "{{ lookup('env', 'LAB_ADMIN_PW') }}",
                "{{ lookup('passwordstore', 'lab/admin') }}",
            ]
        )

    def h9_script_name(self) -> str:
        return self.pick(["get-ldap-bind-pw.sh", "ldap-secret", "read-vault-secret apache/ldap"])

    def h9_colname_target(self) -> str:
        return self.pick(["LabShare/confocal", "svc-confocal@files", "microscopy-share"])

    def h9_vault_hint(self) -> str:
        return self.pick(
            [
                "stored in the team vault (Library / wp-admin)",
                "see 1Password item `libweb admin`",
                "ask the web team lead; not written down here",
            ]
        )

    def h9_rule_text(self) -> str:
        return self.pick(
            [
                "must be at least 12 characters long",
                "must contain a digit and a symbol",
                "must not contain your NetID",
                "was used recently; choose another",
            ]
        )

    def h9_pbkdf2(self) -> str:
        return self.pbkdf2_django()

    def h9_apr1(self) -> str:
        return self.apr1()

    def h9_sha512(self) -> str:
        return self.sha512crypt()

    def h9_bcrypt(self) -> str:
        return "$2b$12$" + self.s(53, ALNUM + "./")

    def h9_md5(self) -> str:
        return self.s(32, HEX)

    def h9_gpgfpr(self) -> str:
        return self.gpg_fpr()

    def h9_pgp_msg(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 5)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP MESSAGE-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP MESSAGE-----"
        )


VALUES = Heldout9Values

TEMPLATES: list[evalset.Template] = [
    # ---------------------------------------------------------------- HPC: Slurm / PBS
    (
        "hpc/slurm/slurmdbd.conf",
        """# slurmdbd.conf -- accounting daemon for cluster "tamarack"
AuthType=auth/munge
DbdHost=slurmdb01
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=mariadb.hpc.internal
StoragePort=3306
StorageUser=slurm
StoragePass={V}
StorageLoc=slurm_acct_db
PurgeEventAfter=12months
""",
        "h9_password",
        True,
    ),
    (
        "hpc/slurm/slurmdbd.conf.j2",
        """# managed by ansible role hpc.slurmdbd -- do not edit on the node
AuthType=auth/munge
DbdHost={{ inventory_hostname_short }}
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost={{ slurmdbd_storage_host }}
StorageUser=slurm
StoragePass={V}
StorageLoc=slurm_acct_db
""",
        "h9_placeholder",
        False,
    ),
    (
        "hpc/jobs/sync_to_archive.sbatch",
        """#!/bin/bash
#SBATCH --job-name=archive-sync
#SBATCH --partition=transfer
#SBATCH --time=08:00:00
#SBATCH --mem=4G
#SBATCH --output=logs/%x-%j.out

module load rclone/1.66
export RCLONE_CONFIG_ARCHIVE_TYPE=s3
export RCLONE_CONFIG_ARCHIVE_PROVIDER=Ceph
export RCLONE_CONFIG_ARCHIVE_ENDPOINT=https://s3.rc.univ.internal
export RCLONE_CONFIG_ARCHIVE_ACCESS_KEY_ID=labsvc
export RCLONE_CONFIG_ARCHIVE_SECRET_ACCESS_KEY={V}

srun rclone sync --transfers 16 /scratch/$USER/run42 archive:lab-raw/run42
""",
        "h9_aws_secret",
        True,
    ),
    (
        "hpc/jobs/sync_to_archive_v2.sbatch",
        """#!/bin/bash
#SBATCH --job-name=archive-sync
#SBATCH --partition=transfer
#SBATCH --time=08:00:00
#SBATCH --output=logs/%x-%j.out

module load rclone/1.66
# the secret lives in the user's keyring, never in the job script
export RCLONE_CONFIG_PASS="$({V})"
export RCLONE_PASSWORD_COMMAND="{V2}"
srun rclone sync /scratch/$USER/run42 archive:lab-raw/run42
""",
        "h9_cmd_ref",
        False,
    ),
    (
        "hpc/jobs/postgres_etl.pbs",
        """#!/bin/bash
#PBS -N cohort_etl
#PBS -l select=1:ncpus=8:mem=32gb
#PBS -l walltime=04:00:00
#PBS -j oe

cd $PBS_O_WORKDIR
module load python/3.11 postgresql/15
export PGHOST=pgcohort.rc.univ.internal
export PGUSER=cohort_etl
export PGPASSWORD='{V}'
python etl/load_visits.py --since 2024-01-01
""",
        "h9_password",
        True,
    ),
    (
        "hpc/jobs/postgres_etl_secure.pbs",
        """#!/bin/bash
#PBS -N cohort_etl
#PBS -l select=1:ncpus=8:mem=32gb
#PBS -l walltime=04:00:00

cd $PBS_O_WORKDIR
module load python/3.11 postgresql/15
export PGHOST=pgcohort.rc.univ.internal
export PGUSER=cohort_etl
export PGPASSFILE={V}
python etl/load_visits.py --since 2024-01-01
""",
        "h9_file_ref",
        False,
    ),
    (
        "hpc/slurm/job_submit_notes.md",
        """# Finished-job accounting

Job ids to double check with `sacct -j <id> --format=JobID,State,Elapsed,MaxRSS`:

| job | state | note |
|-----|-------|------|
| {V} | TIMEOUT | raise walltime |
| {V2} | OOM | needs --mem=64G |
| {V3} | COMPLETED | baseline |
""",
        "h9_jobid",
        False,
    ),
    (
        "hpc/modules/lims-client/2.3.lua",
        """-- Lmod module file for the LIMS command line client
help([[LabVantage CLI 2.3, site build]])
whatis("Name: lims-client")
whatis("Version: 2.3")

local base = "/opt/apps/lims-client/2.3"
prepend_path("PATH", pathJoin(base, "bin"))
setenv("LIMS_URL", "https://lims.bio.univ.internal/api")
setenv("LIMS_API_USER", "hpc-integration")
-- shared integration key so batch jobs can post results
setenv("LIMS_API_KEY", "{V}")
family("lims")
""",
        "h9_secret",
        True,
    ),
    (
        "hpc/modules/lims-client/2.4.lua",
        """-- Lmod module file for the LIMS command line client
help([[LabVantage CLI 2.4, site build]])
whatis("Name: lims-client")
whatis("Version: 2.4")

local base = "/opt/apps/lims-client/2.4"
prepend_path("PATH", pathJoin(base, "bin"))
setenv("LIMS_URL", "https://lims.bio.univ.internal/api")
-- build checksum of the vendor tarball we installed from
setenv("LIMS_CLIENT_SHA256", "{V}")
family("lims")
""",
        "h9_digest",
        False,
    ),
    (
        "hpc/modules/matlab/R2024a",
        """#%Module1.0
## MATLAB R2024a, campus licence
proc ModulesHelp { } {
    puts stderr "MATLAB R2024a with the university network licence"
}
module-whatis "MATLAB R2024a"
set root /opt/apps/matlab/R2024a
prepend-path PATH $root/bin
setenv MLM_LICENSE_FILE 27000@flexlm.univ.internal
# licence server admin (lmadmin web UI)
setenv LMADMIN_PASSWORD {V}
""",
        "h9_weak",
        True,
    ),
    (
        "hpc/containers/bioinfo.def",
        """Bootstrap: docker
From: ubuntu:22.04

%labels
    Maintainer rcs-containers@univ.internal
    Version 1.4

%environment
    export LC_ALL=C
    export NCBI_API_KEY={V}
    export PATH=/opt/tools/bin:$PATH

%post
    apt-get update && apt-get install -y --no-install-recommends wget ca-certificates
    mkdir -p /opt/tools/bin

%runscript
    exec "$@"
""",
        "h9_hex",
        True,
    ),
    (
        "hpc/containers/registry-pull.def",
        """Bootstrap: docker
From: registry.gitlab.univ.internal/rcs/base-images/r-geo:4.3
Registry: registry.gitlab.univ.internal

%setup
    # build host was logged in with:
    #   apptainer remote login --username rcs-bot --password {V} docker://registry.gitlab.univ.internal

%post
    Rscript -e 'install.packages("terra", repos="https://cloud.r-project.org")'
""",
        "h9_gitlab",
        True,
    ),
    (
        "hpc/containers/signing/README.md",
        """# Signing our Apptainer images

Images are signed with the RCS team key. Verify with the public key below:

```
{V}
```

    apptainer key import rcs-team.pub
    apptainer verify bioinfo_1.4.sif
""",
        "h9_pubpem",
        False,
    ),
    (
        "hpc/containers/signing/rcs-team.asc.txt",
        """RCS container signing key (kept offline on the YubiKey; this copy is the
passphrase-protected export for disaster recovery)

{V}
""",
        "h9_encrypted_key",
        False,
    ),
    # ---------------------------------------------------------------- Globus / iRODS / rclone / s3
    (
        "data/globus/transfer_bot.py",
        """\"\"\"Nightly Globus transfer from the sequencer share to the archive collection.\"\"\"
import globus_sdk

CLIENT_ID = "7d1c2f0e-4b41-4a0c-9f66-2d8b0b2e1a55"
CLIENT_SECRET = "{V}"
SRC = "b8a3e0c2-11f7-4e8e-9d0a-6e0d5c4f2a10"
DST = "f1e2d3c4-0b9a-4c8d-8e7f-112233445566"

confidential = globus_sdk.ConfidentialAppAuthClient(CLIENT_ID, CLIENT_SECRET)
authorizer = globus_sdk.ClientCredentialsAuthorizer(
    confidential, globus_sdk.TransferClient.scopes.all
)
tc = globus_sdk.TransferClient(authorizer=authorizer)
tdata = globus_sdk.TransferData(tc, SRC, DST, label="nightly-seq")
tdata.add_item("/seq/out/", "/archive/seq/", recursive=True)
print(tc.submit_transfer(tdata)["task_id"])
""",
        "h9_b64",
        True,
    ),
    (
        "data/globus/endpoints.yml",
        """# Globus collections used by the lab (ids are public, see app.globus.org)
collections:
  sequencer_share:
    id: {V}
    path: /seq/out/
  archive:
    id: {V2}
    path: /archive/seq/
  hpc_scratch:
    id: {V3}
    path: /scratch/
""",
        "h9_uuid",
        False,
    ),
    (
        "data/globus/transfer_bot_env.sh",
        """#!/bin/sh
# sourced by the systemd unit globus-nightly.service
export GLOBUS_CLIENT_ID=7d1c2f0e-4b41-4a0c-9f66-2d8b0b2e1a55
export GLOBUS_CLIENT_SECRET_FILE={V}
exec /opt/globus-bot/venv/bin/python /opt/globus-bot/transfer_bot.py
""",
        "h9_file_ref",
        False,
    ),
    (
        "data/irods/irods_environment.json",
        """{
    "irods_host": "irods.rdm.univ.internal",
    "irods_port": 1247,
    "irods_user_name": "labsvc",
    "irods_zone_name": "uniZone",
    "irods_authentication_scheme": "native",
    "irods_default_resource": "cephRescGroup",
    "irods_client_server_negotiation": "request_server_negotiation",
    "irods_client_server_policy": "CS_NEG_REQUIRE",
    "irods_encryption_key_size": 32,
    "irods_encryption_algorithm": "AES-256-CBC",
    "irods_password": "{V}"
}
""",
        "h9_password",
        True,
    ),
    (
        "data/irods/server_config.json",
        """{
    "schema_version": "v4",
    "zone_name": "uniZone",
    "zone_key": "{V}",
    "negotiation_key": "{V2}",
    "server_control_plane_key": "{V3}",
    "server_control_plane_port": 1248,
    "zone_port": 1247,
    "default_resource_name": "cephRescGroup"
}
""",
        "h9_hex",
        True,
    ),
    (
        "data/irods/setup_answers.txt",
        """# answers fed to setup_irods.py on the new iCAT server (2024-03)
irods
irods
1
postgres.rdm.univ.internal
5432
ICAT
irods_icat
{V}
yes
""",
        "h9_url_pw",
        True,
    ),
    (
        "data/rclone/rclone.conf",
        """[archive]
type = s3
provider = Ceph
env_auth = false
access_key_id = labsvc
secret_access_key = {V}
endpoint = https://s3.rc.univ.internal
acl = private

[onedrive-lab]
type = onedrive
drive_type = business
""",
        "h9_aws_secret",
        True,
    ),
    (
        "data/rclone/rclone.conf.encrypted",
        """# Encrypted rclone configuration File

RCLONE_ENCRYPT_V0:
{V}
""",
        "h9_b64",
        False,
    ),
    (
        "data/rclone/webdav.conf",
        """[nextcloud-lab]
type = webdav
url = https://cloud.univ.internal/remote.php/dav/files/labsvc/
vendor = nextcloud
user = labsvc
# obscured with `rclone obscure` (reversible; treat as the password)
pass = {V}
""",
        "h9_urlsafe",
        True,
    ),
    (
        "data/s3/.s3cfg",
        """[default]
access_key = {V}
secret_key = {V2}
host_base = s3.rc.univ.internal
host_bucket = s3.rc.univ.internal
use_https = True
signature_v2 = False
check_ssl_certificate = True
multipart_chunk_size_mb = 64
""",
        "h9_aws_id",
        True,
    ),
    (
        "data/s3/.s3cfg.template",
        """[default]
# copy to ~/.s3cfg and fill in the keys from https://rc.univ.internal/s3
access_key = {V}
secret_key = {V2}
host_base = s3.rc.univ.internal
host_bucket = s3.rc.univ.internal
use_https = True
""",
        "h9_example",
        False,
    ),
    (
        "data/ceph/ceph.client.labsvc.keyring",
        """[client.labsvc]
\tkey = {V}
\tcaps mon = "allow r"
\tcaps osd = "allow rw pool=lab-rbd"
""",
        "h9_ceph_key",
        True,
    ),
    (
        "data/ceph/cephfs-mount-ansible.yml",
        """- name: mount cephfs for the geo lab
  ansible.posix.mount:
    path: /mnt/geo
    src: "mon1.rc.univ.internal:6789:/labs/geo"
    fstype: ceph
    opts: "name=geo,secretfile={V},_netdev"
    state: mounted
""",
        "h9_file_ref",
        False,
    ),
    (
        "data/minio/minio.env",
        """# /etc/default/minio on minio01
MINIO_VOLUMES="/data/disk{1...4}/minio"
MINIO_OPTS="--console-address :9001"
MINIO_ROOT_USER=rcsadmin
MINIO_ROOT_PASSWORD={V}
MINIO_SERVER_URL=https://minio.rc.univ.internal
""",
        "h9_minio_secret",
        True,
    ),
    (
        "data/minio/mc-alias.sh",
        """#!/usr/bin/env bash
set -euo pipefail
# register the lab bucket alias for the instrument PC
mc alias set labstore https://minio.rc.univ.internal labsvc {V} --api S3v4
mc mb --ignore-existing labstore/microscopy-raw
mc cp --recursive /data/export/ labstore/microscopy-raw/
""",
        "h9_minio_secret",
        True,
    ),
    # ---------------------------------------------------------------- research code
    (
        "research/notebooks/01_pull_redcap.ipynb",
        """{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Pull the cohort export from REDCap"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import requests\\n",
    "REDCAP_URL = 'https://redcap.med.univ.internal/api/'\\n",
    "TOKEN = '{V}'\\n",
    "r = requests.post(REDCAP_URL, data={'token': TOKEN, 'content': 'record', 'format': 'json'})\\n",
    "r.raise_for_status()"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h9_hex",
        True,
    ),
    (
        "research/notebooks/02_clean.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": ["loaded 18211 rows, file sha256 {V}\\n"]
    }
   ],
   "source": [
    "import hashlib, pandas as pd\\n",
    "df = pd.read_parquet('cohort.parquet')\\n",
    "print(f'loaded {len(df)} rows, file sha256 {hashlib.sha256(open(\\"cohort.parquet\\",\\"rb\\").read()).hexdigest()}')"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h9_digest",
        False,
    ),
    (
        "research/notebooks/03_hf_upload.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [],
   "source": [
    "from huggingface_hub import login, HfApi\\n",
    "login(token=\\"{V}\\")\\n",
    "HfApi().upload_folder(folder_path='model_out', repo_id='univ-nlp/thesis-tagger')"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h9_hf",
        True,
    ),
    (
        "research/notebooks/04_db.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os, sqlalchemy as sa\\n",
    "pw = {V}\\n",
    "eng = sa.create_engine(f'postgresql://cohort_ro:{pw}@pgcohort.rc.univ.internal/cohort')"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h9_env_ref_py",
        False,
    ),
    (
        "research/R/.Renviron",
        """R_LIBS_USER=~/R/%p-library/%v
REDCAP_API_URL=https://redcap.med.univ.internal/api/
REDCAP_API_TOKEN={V}
QUALTRICS_BASE_URL=univ.eu.qualtrics.com
QUALTRICS_API_KEY={V2}
""",
        "h9_secret",
        True,
    ),
    (
        "research/R/load_survey.R",
        """library(DBI)
library(RPostgres)

con <- dbConnect(
  RPostgres::Postgres(),
  host = "pgsurvey.rc.univ.internal",
  dbname = "survey2024",
  user = "survey_rw",
  password = "{V}"
)
responses <- dbGetQuery(con, "SELECT * FROM responses WHERE wave = 3")
dbDisconnect(con)
""",
        "h9_password",
        True,
    ),
    (
        "research/R/load_survey_keyring.R",
        """library(DBI)
library(keyring)

con <- dbConnect(
  RPostgres::Postgres(),
  host = "pgsurvey.rc.univ.internal",
  dbname = "survey2024",
  user = "survey_rw",
  password = {V}
)
responses <- dbGetQuery(con, "SELECT * FROM responses WHERE wave = 3")
""",
        "h9_r_ref",
        False,
    ),
    (
        "research/R/authors.R",
        """# author metadata for the CRediT statement
authors <- data.frame(
  name  = c("A. Okafor", "L. Brandt", "S. Iyer"),
  orcid = c("{V}", "{V2}", "{V3}"),
  role  = c("Conceptualization", "Software", "Supervision")
)
""",
        "h9_orcid",
        False,
    ),
    (
        "research/matlab/connect_lims.m",
        """function conn = connect_lims()
%CONNECT_LIMS Open a JDBC connection to the lab LIMS (Oracle).
%   Used by the plate reader post-processing scripts.
    datasource = 'LIMSPROD';
    username   = 'plate_reader';
    password   = '{V}';
    conn = database(datasource, username, password, ...
        'Vendor', 'Oracle', 'Server', 'lims-db.bio.univ.internal', 'PortNumber', 1521);
    if ~isopen(conn)
        error('connect_lims:failed', conn.Message);
    end
end
""",
        "h9_password",
        True,
    ),
    (
        "research/matlab/connect_lims_v2.m",
        """function conn = connect_lims()
%CONNECT_LIMS Open a JDBC connection to the lab LIMS (Oracle).
    username = 'plate_reader';
    password = {V};
    conn = database('LIMSPROD', username, password, 'Vendor', 'Oracle');
end
""",
        "h9_matlab_ref",
        False,
    ),
    (
        "research/julia/fetch.jl",
        """using HTTP, JSON3

const ZENODO_TOKEN = "{V}"

function upload(depid::Int, path::String)
    url = "https://zenodo.org/api/deposit/depositions/$(depid)/files"
    HTTP.post(url, ["Authorization" => "Bearer $(ZENODO_TOKEN)"],
        HTTP.Form(Dict("file" => open(path))))
end
""",
        "h9_secret",
        True,
    ),
    (
        "research/julia/fetch_env.jl",
        """using HTTP, JSON3

const ZENODO_TOKEN = {V}

function upload(depid::Int, path::String)
    url = "https://zenodo.org/api/deposit/depositions/$(depid)/files"
    HTTP.post(url, ["Authorization" => "Bearer $(ZENODO_TOKEN)"], HTTP.Form(Dict("file" => open(path))))
end
""",
        "h9_julia_ref",
        False,
    ),
    (
        "research/fortran/ocean.nml",
        """&model_params
  nx = 720
  ny = 360
  dt = 600.0
  run_id = '{V}'
/
&io_params
  output_dir = '/scratch/ocean/run_2024b'
  restart_interval = 96
/
""",
        "h9_jobid",
        False,
    ),
    (
        "research/fortran/remote_io.nml",
        """&remote_io
  use_thredds = .true.
  thredds_url = 'https://thredds.rc.univ.internal/thredds/dodsC/ocean'
  thredds_user = 'oceanmodel'
  thredds_pass = '{V}'
/
""",
        "h9_password",
        True,
    ),
    (
        "research/stata/import_admin.do",
        """* import administrative extract over ODBC
clear all
set more off
odbc load, exec("SELECT * FROM enrolment WHERE year >= 2015") ///
    dsn("REGISTRY") user("stata_reader") password("{V}") clear
save "data/enrolment.dta", replace
""",
        "h9_password",
        True,
    ),
    (
        "research/sas/libname.sas",
        """/* connect to the warehouse; user-specific */
libname dwh oracle
    user=sas_analyst
    password="{V}"
    path=DWHPROD
    schema=CLINICAL;

proc contents data=dwh.visits; run;
""",
        "h9_password",
        True,
    ),
    (
        "research/sas/libname_encoded.sas",
        """/* connect to the warehouse; password encoded with PROC PWENCODE per policy */
libname dwh oracle
    user=sas_analyst
    password="{V}"
    path=DWHPROD
    schema=CLINICAL;
""",
        "h9_sas_ref",
        False,
    ),
    (
        "research/pipelines/Snakefile",
        """configfile: "config/config.yaml"

SAMPLES = config["samples"]

rule all:
    input: expand("results/{sample}.bam", sample=SAMPLES)

rule fetch:
    output: "raw/{sample}.fastq.gz"
    params:
        user="seqcore",
        password="{V}"
    shell:
        "curl -fsS -u {params.user}:{params.password} "
        "https://seqcore.bio.univ.internal/runs/{wildcards.sample}.fastq.gz -o {output}"
""",
        "h9_url_pw",
        True,
    ),
    (
        "research/pipelines/config/config.yaml",
        """samples:
  - S01
  - S02
  - S03
reference: /refs/GRCh38/genome.fa
reference_md5: {V}
annotation_md5: {V2}
threads: 16
""",
        "h9_digest",
        False,
    ),
    (
        "research/pipelines/nextflow_secret.config",
        """aws {
    accessKey = '{V}'
    secretKey = '{V2}'
    client {
        endpoint = 'https://s3.rc.univ.internal'
        s3PathStyleAccess = true
    }
}
tower {
    enabled = false
}
""",
        "h9_aws_secret",
        True,
    ),
    (
        "research/pipelines/nextflow_secrets_ref.config",
        """aws {
    accessKey = {V}
    secretKey = {V2}
    client.endpoint = 'https://s3.rc.univ.internal'
}
""",
        "h9_nf_ref",
        False,
    ),
    (
        "research/envs/environment.yml",
        """name: thesis-geo
channels:
  - conda-forge
dependencies:
  - python=3.11
  - gdal=3.8
  - rasterio
  - pip
  - pip:
      - --extra-index-url https://__token__:{V}@gitlab.univ.internal/api/v4/projects/412/packages/pypi/simple
      - geo-utils==0.9.2
""",
        "h9_gitlab",
        True,
    ),
    (
        "research/envs/conda-lock.yml",
        """version: 1
metadata:
  platforms: [linux-64]
package:
  - name: gdal
    version: 3.8.4
    manager: conda
    platform: linux-64
    url: https://conda.anaconda.org/conda-forge/linux-64/gdal-3.8.4-py311h8be719e_0.conda
    hash:
      md5: {V}
      sha256: {V2}
""",
        "h9_digest",
        False,
    ),
    (
        "research/envs/.condarc",
        """channels:
  - https://conda.univ.internal/t/{V}/labs
  - conda-forge
channel_priority: strict
ssl_verify: true
""",
        "h9_secret",
        True,
    ),
    # ---------------------------------------------------------------- instruments / LIMS
    (
        "lab/instruments/platereader_bridge.ini",
        """; bridge between the Tecan plate reader PC and the LIMS
[reader]
export_dir = D:\\TecanExports
poll_seconds = 30

[lims]
base_url = https://lims.bio.univ.internal/api/v2
api_user = tecan-bridge
api_secret = {V}
verify_tls = true
""",
        "h9_secret",
        True,
    ),
    (
        "lab/instruments/platereader_bridge.ini.dist",
        """; bridge between the Tecan plate reader PC and the LIMS
[reader]
export_dir = D:\\TecanExports
poll_seconds = 30

[lims]
base_url = https://lims.bio.univ.internal/api/v2
api_user = tecan-bridge
api_secret = {V}
verify_tls = true
""",
        "h9_placeholder",
        False,
    ),
    (
        "lab/instruments/microscope_upload.ps1",
        """# Runs on the confocal PC as a scheduled task
$ErrorActionPreference = 'Stop'
$share = '\\\\files.univ.internal\\microscopy'
$user  = 'UNIV\\svc-confocal'
$pass  = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred  = New-Object System.Management.Automation.PSCredential($user, $pass)
New-PSDrive -Name M -PSProvider FileSystem -Root $share -Credential $cred | Out-Null
Copy-Item -Path 'E:\\Export\\*' -Destination 'M:\\incoming' -Recurse
""",
        "h9_password",
        True,
    ),
    (
        "lab/instruments/microscope_upload_v2.ps1",
        """# Runs on the confocal PC as a scheduled task; credential from Windows Credential Manager
$ErrorActionPreference = 'Stop'
$cred = Get-StoredCredential -Target '{V}'
New-PSDrive -Name M -PSProvider FileSystem -Root '\\\\files.univ.internal\\microscopy' -Credential $cred | Out-Null
""",
        "h9_colname_target",
        False,
    ),
    (
        "lab/instruments/sequencer/RunUploader.config.xml",
        """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="OutputFolder" value="D:\\Illumina\\Runs" />
    <add key="LimsEndpoint" value="https://lims.bio.univ.internal/api/v2/runs" />
    <add key="LimsApiToken" value="{V}" />
    <add key="RunIdPrefix" value="NB552" />
  </appSettings>
</configuration>
""",
        "h9_jwt",
        True,
    ),
    (
        "lab/instruments/sequencer/RunLog.xml",
        """<?xml version="1.0" encoding="utf-8"?>
<RunInfo Version="6">
  <Run Id="240611_NB552014_0412_AHKLMNBGXW" Number="412">
    <Flowcell>HKLMNBGXW</Flowcell>
    <UploadSession>{V}</UploadSession>
    <ChecksumSHA256>{V2}</ChecksumSHA256>
  </Run>
</RunInfo>
""",
        "h9_hex",
        False,
    ),
    (
        "lab/lims/settings_local.py",
        """# local overrides for the lab LIMS (Django)
from .settings import *  # noqa

DEBUG = False
ALLOWED_HOSTS = ["lims.bio.univ.internal"]
SECRET_KEY = "{V}"
DATABASES["default"]["HOST"] = "lims-db.bio.univ.internal"
""",
        "h9_django",
        True,
    ),
    (
        "lab/lims/settings_prod.py",
        """import os
from .settings import *  # noqa

DEBUG = False
ALLOWED_HOSTS = ["lims.bio.univ.internal"]
SECRET_KEY = {V}
DATABASES["default"]["PASSWORD"] = {V2}
""",
        "h9_env_ref_py",
        False,
    ),
    (
        "lab/lims/fixtures/users.json",
        """[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {"username": "labmanager", "password": "{V}", "is_staff": true}
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {"username": "tech01", "password": "{V2}", "is_staff": false}
  }
]
""",
        "h9_pbkdf2",
        False,
    ),
    (
        "lab/lims/tests/test_api.py",
        """import pytest
from django.contrib.auth.models import User


@pytest.fixture
def tech(db):
    return User.objects.create_user("tech01", password="{V}")


def test_login(client, tech):
    assert client.login(username="tech01", password="{V}")
    assert client.get("/samples/").status_code == 200
""",
        "h9_weak",
        True,
    ),
    (
        "lab/freezer-monitor/config.yaml",
        """sensors:
  - id: ult-freezer-3
    probe: /dev/ttyUSB0
    alarm_below: -86
    alarm_above: -70
notify:
  slack_webhook: {V}
  channel: "#cold-storage"
""",
        "h9_slack_hook",
        True,
    ),
    (
        "lab/freezer-monitor/config.example.yaml",
        """sensors:
  - id: ult-freezer-3
    probe: /dev/ttyUSB0
notify:
  slack_webhook: {V}
  channel: "#cold-storage"
""",
        "h9_placeholder",
        False,
    ),
    # ---------------------------------------------------------------- campus web
    (
        "web/drupal/sites/default/settings.php",
        """<?php

$databases['default']['default'] = [
  'database' => 'drupal_arts',
  'username' => 'drupal_arts',
  'password' => '{V}',
  'host' => 'mysql-web.univ.internal',
  'port' => '3306',
  'driver' => 'mysql',
  'prefix' => '',
];

$settings['config_sync_directory'] = '../config/sync';
$settings['trusted_host_patterns'] = ['^arts\\.univ\\.edu$'];
""",
        "h9_password",
        True,
    ),
    (
        "web/drupal/sites/default/settings.salt.php",
        """<?php
// hash salt for one-time login links and form tokens
$settings['hash_salt'] = '{V}';
$settings['update_free_access'] = FALSE;
$settings['file_private_path'] = '/var/www/private/arts';
""",
        "h9_urlsafe",
        True,
    ),
    (
        "web/drupal/sites/default/settings.platform.php",
        """<?php
$databases['default']['default'] = [
  'database' => getenv('DB_NAME'),
  'username' => getenv('DB_USER'),
  'password' => {V},
  'host' => getenv('DB_HOST'),
  'driver' => 'mysql',
];
$settings['hash_salt'] = {V2};
""",
        "h9_php_ref",
        False,
    ),
    (
        "web/wordpress/wp-config.php",
        """<?php
define( 'DB_NAME', 'wp_library' );
define( 'DB_USER', 'wp_library' );
define( 'DB_PASSWORD', '{V}' );
define( 'DB_HOST', 'mysql-web.univ.internal' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );

$table_prefix = 'wplib_';
define( 'WP_DEBUG', false );
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
""",
        "h9_password",
        True,
    ),
    (
        "web/wordpress/wp-salts.php",
        """<?php
define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V2}' );
define( 'LOGGED_IN_KEY',    '{V3}' );
define( 'NONCE_KEY',        '{V4}' );
""",
        "h9_wp_salt",
        True,
    ),
    (
        "web/wordpress/wp-config-sample.php",
        """<?php
/** The name of the database for WordPress */
define( 'DB_NAME', 'database_name_here' );
define( 'DB_USER', 'username_here' );
define( 'DB_PASSWORD', '{V}' );
define( 'DB_HOST', 'localhost' );

define( 'AUTH_KEY',         'put your unique phrase here' );
define( 'SECURE_AUTH_KEY',  'put your unique phrase here' );
""",
        "h9_placeholder",
        False,
    ),
    (
        "web/wordpress/wp-users-export.sql",
        """-- export of wp_users for the staging copy (hashes only)
INSERT INTO `wplib_users` (`ID`, `user_login`, `user_pass`, `user_email`) VALUES
(1, 'libweb', '{V}', 'libweb@univ.edu'),
(2, 'editor1', '{V2}', 'editor1@univ.edu');
""",
        "h9_hash",
        False,
    ),
    (
        "web/moodle/config.php",
        """<?php  // Moodle configuration file

unset($CFG);
global $CFG;
$CFG = new stdClass();

$CFG->dbtype    = 'pgsql';
$CFG->dblibrary = 'native';
$CFG->dbhost    = 'pg-moodle.univ.internal';
$CFG->dbname    = 'moodle';
$CFG->dbuser    = 'moodle';
$CFG->dbpass    = '{V}';
$CFG->prefix    = 'mdl_';

$CFG->wwwroot   = 'https://learn.univ.edu';
$CFG->dataroot  = '/var/moodledata';
$CFG->admin     = 'admin';

require_once(__DIR__ . '/lib/setup.php');
""",
        "h9_password",
        True,
    ),
    (
        "web/moodle/config-docker.php",
        """<?php
unset($CFG);
global $CFG;
$CFG = new stdClass();
$CFG->dbtype    = 'pgsql';
$CFG->dbhost    = getenv('MOODLE_DOCKER_DBHOST');
$CFG->dbuser    = 'moodle';
$CFG->dbpass    = {V};
$CFG->wwwroot   = 'http://localhost:8000';
require_once(__DIR__ . '/lib/setup.php');
""",
        "h9_php_ref",
        False,
    ),
    (
        "web/moodle/local/sis_sync/settings.php",
        """<?php
defined('MOODLE_INTERNAL') || die();
// SIS enrolment sync: webservice token for the registrar's REST API
$settings->add(new admin_setting_configpasswordunmask(
    'local_sis_sync/apitoken',
    get_string('apitoken', 'local_sis_sync'),
    get_string('apitoken_desc', 'local_sis_sync'),
    '{V}'
));
""",
        "h9_hex",
        True,
    ),
    (
        "web/moodle/lang/en/local_sis_sync.php",
        """<?php
$string['pluginname'] = 'SIS enrolment sync';
$string['apitoken'] = 'API token';
$string['apitoken_desc'] = '{V}';
$string['passwordexpired'] = '{V2}';
""",
        "h9_text",
        False,
    ),
    (
        "web/legacy/dept-directory/db.inc.php",
        """<?php
// legacy staff directory (2009), still linked from the chemistry site
$link = mysql_connect('mysql-legacy.univ.internal', 'chemdir', '{V}');
if (!$link) {
    die('Could not connect: ' . mysql_error());
}
mysql_select_db('chem_directory', $link);
""",
        "h9_weak",
        True,
    ),
    (
        "web/legacy/dept-directory/admin/.htpasswd",
        """chemweb:{V}
secretary:{V2}
""",
        "h9_apr1",
        False,
    ),
    (
        "web/legacy/dept-directory/admin/.htaccess",
        """AuthType Basic
AuthName "Chemistry directory admin"
AuthUserFile /var/www/chemdir/admin/.htpasswd
Require valid-user
# old shared login, handed out at staff meetings: chemweb / {V}
""",
        "h9_weak",
        True,
    ),
    (
        "web/legacy/cgi-bin/roombook.pl",
        """#!/usr/bin/perl
use strict;
use warnings;
use CGI;
use DBI;

my $q = CGI->new;
my $dbh = DBI->connect(
    "DBI:mysql:database=roombook;host=mysql-legacy.univ.internal",
    "roombook", "{V}",
    { RaiseError => 1, AutoCommit => 1 }
);
print $q->header('text/html');
""",
        "h9_password",
        True,
    ),
    (
        "web/legacy/cgi-bin/roombook_env.pl",
        """#!/usr/bin/perl
use strict;
use warnings;
use DBI;

my $dbh = DBI->connect(
    "DBI:mysql:database=roombook;host=mysql-legacy.univ.internal",
    "roombook", {V},
    { RaiseError => 1 }
);
""",
        "h9_perl_ref",
        False,
    ),
    (
        "web/apache/mod_authnz_ldap.conf",
        """<Location /intranet>
    AuthType Basic
    AuthName "University login"
    AuthBasicProvider ldap
    AuthLDAPURL "ldaps://ldap.univ.internal/ou=people,dc=univ,dc=edu?uid"
    AuthLDAPBindDN "cn=apache-intranet,ou=services,dc=univ,dc=edu"
    AuthLDAPBindPassword "{V}"
    Require ldap-group cn=staff,ou=groups,dc=univ,dc=edu
</Location>
""",
        "h9_password",
        True,
    ),
    (
        "web/apache/mod_authnz_ldap_exec.conf",
        """<Location /intranet>
    AuthType Basic
    AuthBasicProvider ldap
    AuthLDAPURL "ldaps://ldap.univ.internal/ou=people,dc=univ,dc=edu?uid"
    AuthLDAPBindDN "cn=apache-intranet,ou=services,dc=univ,dc=edu"
    AuthLDAPBindPassword "exec:/usr/local/sbin/{V}"
    Require valid-user
</Location>
""",
        "h9_script_name",
        False,
    ),
    (
        "web/apache/mod_auth_openidc.conf",
        """OIDCProviderMetadataURL https://login.univ.edu/.well-known/openid-configuration
OIDCClientID research-portal
OIDCClientSecret {V}
OIDCRedirectURI https://research.univ.edu/redirect_uri
OIDCCryptoPassphrase {V2}
OIDCScope "openid email profile"
""",
        "h9_secret",
        True,
    ),
    (
        "web/shibboleth/shibboleth2.xml",
        """<SPConfig xmlns="urn:mace:shibboleth:3.0:native:sp:config" clockSkew="180">
    <ApplicationDefaults entityID="https://research.univ.edu/shibboleth" REMOTE_USER="eppn">
        <Sessions lifetime="28800" timeout="3600" checkAddress="false" handlerSSL="true">
            <SSO entityID="https://idp.univ.edu/idp/shibboleth">SAML2</SSO>
        </Sessions>
        <MetadataProvider type="XML" url="https://idp.univ.edu/idp/shibboleth"
            backingFilePath="idp-metadata.xml" reloadInterval="7200"/>
        <CredentialResolver type="File" key="sp-key.pem" certificate="sp-cert.pem"/>
    </ApplicationDefaults>
    <DataSealer type="Versioned" path="{V}"/>
</SPConfig>
""",
        "h9_file_ref",
        False,
    ),
    (
        "web/shibboleth/sp-key.pem",
        """{V}
""",
        "h9_rsa",
        True,
    ),
    (
        "web/shibboleth/sp-cert.pem",
        """{V}
""",
        "h9_cert",
        False,
    ),
    (
        "web/shibboleth/idp/credentials/secrets.properties",
        """# Shibboleth IdP secrets
idp.sealer.storePassword = {V}
idp.sealer.keyPassword = {V}
idp.authn.LDAP.bindDNCredential = {V2}
idp.persistentId.salt = {V3}
""",
        "h9_password",
        True,
    ),
    (
        "web/cas/cas.properties",
        """cas.server.name=https://cas.univ.edu
cas.server.prefix=${cas.server.name}/cas
cas.authn.ldap[0].type=AUTHENTICATED
cas.authn.ldap[0].ldap-url=ldaps://ldap.univ.internal
cas.authn.ldap[0].bind-dn=cn=cas,ou=services,dc=univ,dc=edu
cas.authn.ldap[0].bind-credential={V}
cas.tgc.crypto.encryption.key={V2}
cas.tgc.crypto.signing.key={V3}
""",
        "h9_urlsafe",
        True,
    ),
    (
        "web/cas/cas-overlay.properties",
        """cas.server.name=https://cas.univ.edu
cas.authn.ldap[0].ldap-url=ldaps://ldap.univ.internal
cas.authn.ldap[0].bind-dn=cn=cas,ou=services,dc=univ,dc=edu
cas.authn.ldap[0].bind-credential={V}
cas.tgc.crypto.encryption.key={V2}
""",
        "h9_env_ref",
        False,
    ),
    # ---------------------------------------------------------------- identity
    (
        "identity/freeradius/clients.conf",
        """client eduroam-flr-1 {
    ipaddr = 192.0.2.10
    secret = {V}
    shortname = flr1
    nas_type = other
}

client wlc-main {
    ipaddr = 10.40.0.0/16
    secret = {V2}
    require_message_authenticator = yes
}
""",
        "h9_radius",
        True,
    ),
    (
        "identity/freeradius/mods-available/ldap",
        """ldap {
    server = 'ldaps://ldap.univ.internal'
    identity = 'cn=radius,ou=services,dc=univ,dc=edu'
    password = {V}
    base_dn = 'ou=people,dc=univ,dc=edu'
    user {
        base_dn = "${..base_dn}"
        filter = "(uid=%{%{Stripped-User-Name}:-%{User-Name}})"
    }
}
""",
        "h9_password",
        True,
    ),
    (
        "identity/freeradius/mods-config/files/authorize",
        """# local test accounts for the eduroam lab AP
bob     Cleartext-Password := "{V}"
        Reply-Message := "Hello, %{User-Name}"

labtest Cleartext-Password := "{V2}"
""",
        "h9_weak",
        True,
    ),
    (
        "identity/freeradius/mods-config/files/authorize.hashed",
        """# staff fallback accounts when LDAP is down; hashes only
rcsadmin   Crypt-Password := "{V}"
netops     Crypt-Password := "{V2}"
""",
        "h9_sha512",
        False,
    ),
    (
        "identity/eduroam/cat-profile-notes.md",
        """# eduroam CAT profile (staff)

- Outer identity: `anonymous@univ.edu`
- EAP method: PEAP/MSCHAPv2
- Server name: `radius.univ.edu`
- CA fingerprint (SHA-256): `{V}`

Users log in with their NetID and NetID password; we never hand out passwords here.
""",
        "h9_digest",
        False,
    ),
    (
        "identity/kerberos/keytab-howto.md",
        """# Creating the keytab for the HPC login nodes

```
kadmin -p rcsadmin/admin -w '{V}' -q "addprinc -randkey host/login1.hpc.univ.internal"
kadmin -p rcsadmin/admin -w '{V}' -q "ktadd -k /etc/krb5.keytab host/login1.hpc.univ.internal"
```

Then `klist -kte /etc/krb5.keytab` and copy it with `scp -p`.
""",
        "h9_password",
        True,
    ),
    (
        "identity/kerberos/kdc.conf",
        """[kdcdefaults]
    kdc_ports = 88
    kdc_tcp_ports = 88

[realms]
    UNIV.EDU = {
        database_name = /var/lib/krb5kdc/principal
        admin_keytab = FILE:/etc/krb5kdc/kadm5.keytab
        acl_file = /etc/krb5kdc/kadm5.acl
        key_stash_file = {V}
        max_life = 10h 0m 0s
        supported_enctypes = aes256-cts-hmac-sha1-96:normal
    }
""",
        "h9_file_ref",
        False,
    ),
    (
        "identity/kerberos/kdb5_util_notes.txt",
        """KDC rebuild 2023-11, ran on kdc1:

  kdb5_util create -r UNIV.EDU -s -P {V}

(stash file written to /etc/krb5kdc/.k5.UNIV.EDU; master key password also in the safe)
""",
        "h9_passphrase",
        True,
    ),
    (
        "identity/ldap/slapd.conf",
        """include         /etc/openldap/schema/core.schema
include         /etc/openldap/schema/eduperson.schema
database        mdb
suffix          "dc=univ,dc=edu"
rootdn          "cn=Manager,dc=univ,dc=edu"
rootpw          {V}
directory       /var/lib/ldap
index           objectClass eq
""",
        "h9_ssha",
        False,
    ),
    (
        "identity/ldap/slapd-lab.conf",
        """database        mdb
suffix          "dc=lab,dc=chem,dc=univ,dc=edu"
rootdn          "cn=admin,dc=lab,dc=chem,dc=univ,dc=edu"
rootpw          {V}
directory       /var/lib/ldap-lab
""",
        "h9_weak",
        True,
    ),
    (
        "identity/ldap/add-service-account.ldif",
        """dn: cn=moodle-sync,ou=services,dc=univ,dc=edu
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: moodle-sync
description: LDAP bind account for Moodle user sync
userPassword: {V}
""",
        "h9_ssha",
        False,
    ),
    (
        "identity/ldap/ldapsearch-cheatsheet.md",
        """# LDAP queries for the helpdesk

Look up a student's groups:

    ldapsearch -H ldaps://ldap.univ.internal -D "cn=helpdesk-ro,ou=services,dc=univ,dc=edu" \\
        -w {V} -b "ou=people,dc=univ,dc=edu" "(uid=jdoe42)" memberOf

Never paste the results into tickets.
""",
        "h9_password",
        True,
    ),
    (
        "identity/ldap/sssd.conf",
        """[sssd]
services = nss, pam
domains = univ.edu

[domain/univ.edu]
id_provider = ldap
auth_provider = krb5
ldap_uri = ldaps://ldap.univ.internal
ldap_default_bind_dn = cn=hpc-nss,ou=services,dc=univ,dc=edu
ldap_default_authtok_type = obfuscated_password
ldap_default_authtok = {V}
krb5_realm = UNIV.EDU
""",
        "h9_b64",
        True,
    ),
    # ---------------------------------------------------------------- mail and lists
    (
        "mail/postfix/sasl_passwd",
        """# relay through the central campus smarthost
[smtp.univ.edu]:587    hpc-notify@univ.edu:{V}
""",
        "h9_password",
        True,
    ),
    (
        "mail/postfix/main.cf",
        """myhostname = login1.hpc.univ.internal
relayhost = [smtp.univ.edu]:587
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = hash:{V}
smtp_sasl_security_options = noanonymous
smtp_tls_security_level = encrypt
""",
        "h9_file_ref",
        False,
    ),
    (
        "mail/mailman/mm_cfg.py",
        """# Mailman 2 site config for lists.univ.edu
from Defaults import *

DEFAULT_URL_HOST = 'lists.univ.edu'
DEFAULT_EMAIL_HOST = 'lists.univ.edu'
MTA = 'Postfix'
# site admin password set with: bin/mmsitepass {V}
DEFAULT_SERVER_LANGUAGE = 'en'
""",
        "h9_password",
        True,
    ),
    (
        "mail/mailman/mailman-web.py",
        """# Mailman 3 web (Postorius/HyperKitty) settings
SECRET_KEY = '{V}'
MAILMAN_REST_API_URL = 'http://localhost:8001'
MAILMAN_REST_API_USER = 'restadmin'
MAILMAN_ARCHIVER_FROM = ('127.0.0.1', '::1')
""",
        "h9_django",
        True,
    ),
    (
        "mail/fetchmail/.fetchmailrc",
        """set daemon 300
set logfile ~/.fetchmail.log

poll imap.univ.edu protocol IMAP
    user "lab-instruments@univ.edu" there with password "{V}" is labsvc here
    ssl sslcertck
    folder INBOX
    mda "/usr/bin/procmail -d %T"
""",
        "h9_password",
        True,
    ),
    (
        "mail/mutt/muttrc",
        """set realname = "Research Computing Helpdesk"
set from = "rcs-help@univ.edu"
set imap_user = "rcs-help@univ.edu"
set imap_pass = "{V}"
set folder = "imaps://imap.univ.edu:993"
set spoolfile = "+INBOX"
set smtp_url = "smtp://rcs-help@univ.edu@smtp.univ.edu:587/"
set ssl_force_tls = yes
""",
        "h9_password",
        True,
    ),
    (
        "mail/mutt/muttrc.secure",
        """set realname = "Research Computing Helpdesk"
set imap_user = "rcs-help@univ.edu"
set imap_pass = "`{V}`"
set folder = "imaps://imap.univ.edu:993"
""",
        "h9_cmd_ref",
        False,
    ),
    (
        "mail/msmtp/msmtprc",
        """defaults
auth           on
tls            on
tls_trust_file /etc/ssl/certs/ca-certificates.crt
logfile        ~/.msmtp.log

account        univ
host           smtp.univ.edu
port           587
from           cluster-jobs@univ.edu
user           cluster-jobs@univ.edu
password       {V}

account default : univ
""",
        "h9_password",
        True,
    ),
    (
        "mail/msmtp/msmtprc.eval",
        """account        univ
host           smtp.univ.edu
port           587
from           cluster-jobs@univ.edu
user           cluster-jobs@univ.edu
passwordeval   "{V}"
account default : univ
""",
        "h9_cmd_ref",
        False,
    ),
    (
        "mail/sendgrid/newsletter.py",
        """\"\"\"Alumni newsletter sender (marketing team's SendGrid subaccount).\"\"\"
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

sg = SendGridAPIClient("{V}")
msg = Mail(from_email="alumni@univ.edu", to_emails="alumni-list@univ.edu",
           subject="Spring newsletter", html_content=open("issue.html").read())
print(sg.send(msg).status_code)
""",
        "h9_sendgrid",
        True,
    ),
    # ---------------------------------------------------------------- backups
    (
        "backup/restic/restic.env",
        """# /etc/restic/restic.env on labfs01
RESTIC_REPOSITORY=s3:https://s3.rc.univ.internal/backup-labfs01
RESTIC_PASSWORD={V}
AWS_ACCESS_KEY_ID=backup-labfs01
AWS_SECRET_ACCESS_KEY={V2}
""",
        "h9_minio_secret",
        True,
    ),
    (
        "backup/restic/restic-secure.env",
        """RESTIC_REPOSITORY=s3:https://s3.rc.univ.internal/backup-labfs01
RESTIC_PASSWORD_FILE={V}
AWS_SHARED_CREDENTIALS_FILE={V2}
""",
        "h9_file_ref",
        False,
    ),
    (
        "backup/restic/run-backup.sh",
        """#!/bin/sh
set -eu
export RESTIC_REPOSITORY=sftp:backup@nas2.univ.internal:/srv/restic/labfs01
export RESTIC_PASSWORD='{V}'
restic backup /srv/labdata --exclude-caches --tag nightly
restic forget --keep-daily 7 --keep-weekly 8 --prune
""",
        "h9_passphrase",
        True,
    ),
    (
        "backup/borg/borg.env",
        """BORG_REPO=ssh://borg@nas2.univ.internal:2222/./labws-17
BORG_PASSPHRASE="{V}"
BORG_RSH="ssh -i /root/.ssh/borg_ed25519"
""",
        "h9_passphrase",
        True,
    ),
    (
        "backup/borg/borg-secure.env",
        """BORG_REPO=ssh://borg@nas2.univ.internal:2222/./labws-17
BORG_PASSCOMMAND="{V}"
BORG_RSH="ssh -i /root/.ssh/borg_ed25519"
""",
        "h9_cmd_ref",
        False,
    ),
    (
        "backup/borg/borg_ed25519",
        """{V}
""",
        "h9_openssh",
        True,
    ),
    (
        "backup/borg/authorized_keys",
        """command="borg serve --restrict-to-path /srv/borg/labws-17",restrict {V}
command="borg serve --restrict-to-path /srv/borg/labws-18",restrict {V2}
""",
        "h9_pubkey",
        False,
    ),
    (
        "backup/duplicity/README.md",
        """# Web server backups (duplicity)

Encrypted to the GPG key with fingerprint `{V}`; the passphrase is in the team vault
under "web/duplicity". Restore test log:

    duplicity restore --file-to-restore var/www/arts sftp://backup@nas2.univ.internal//srv/dup/webserver /tmp/arts
""",
        "h9_gpgfpr",
        False,
    ),
    # ---------------------------------------------------------------- Ansible / Salt
    (
        "ops/ansible/group_vars/labmachines/vars.yml",
        """---
lab_admin_user: labadmin
lab_admin_password: "{V}"
ntp_servers:
  - ntp1.univ.internal
  - ntp2.univ.internal
cups_server: print.univ.internal
""",
        "h9_password",
        True,
    ),
    (
        "ops/ansible/group_vars/labmachines/vault.yml",
        """{V}
""",
        "h9_vault",
        False,
    ),
    (
        "ops/ansible/group_vars/labmachines/main.yml",
        """---
lab_admin_user: labadmin
lab_admin_password: "{V}"
ldap_bind_pw: "{V2}"
""",
        "h9_jinja_ref",
        False,
    ),
    (
        "ops/ansible/roles/labws/tasks/users.yml",
        """- name: create local lab admin
  ansible.builtin.user:
    name: labadmin
    groups: wheel
    password: "{V}"
    update_password: on_create

- name: create student account for the teaching lab
  ansible.builtin.user:
    name: student
    password: "{V2}"
""",
        "h9_sha512",
        False,
    ),
    (
        "ops/ansible/roles/labws/tasks/users_plain.yml",
        """- name: create student account for the teaching lab
  ansible.builtin.user:
    name: student
    password: "{{ '{V}' | password_hash('sha512', 'labsalt') }}"
    update_password: always
""",
        "h9_weak",
        True,
    ),
    (
        "ops/ansible/inventory/teaching-lab.ini",
        """[teachlab]
tl-pc[01:40].chem.univ.internal

[teachlab:vars]
ansible_user=labadmin
ansible_password={V}
ansible_become_password={V}
ansible_connection=ssh
""",
        "h9_password",
        True,
    ),
    (
        "ops/ansible/inventory/windows-lab.yml",
        """all:
  children:
    winlab:
      hosts:
        wl-pc01.geo.univ.internal:
        wl-pc02.geo.univ.internal:
      vars:
        ansible_connection: winrm
        ansible_winrm_transport: ntlm
        ansible_user: UNIV\\svc-winlab
        ansible_password: {V}
""",
        "h9_password",
        True,
    ),
    (
        "ops/salt/pillar/ldap.sls",
        """ldap:
  uri: ldaps://ldap.univ.internal
  binddn: cn=salt,ou=services,dc=univ,dc=edu
  bindpw: {V}
""",
        "h9_password",
        True,
    ),
    (
        "ops/salt/pillar/ldap_gpg.sls",
        """#!yaml|gpg
ldap:
  uri: ldaps://ldap.univ.internal
  binddn: cn=salt,ou=services,dc=univ,dc=edu
  bindpw: |
    {IV}
""",
        "h9_pgp_msg",
        False,
    ),
    (
        "ops/salt/states/labws/munge.sls",
        """munge-key:
  file.managed:
    - name: /etc/munge/munge.key
    - contents_pillar: munge:key
    - user: munge
    - mode: '0400'
# key fingerprint for the audit: {V}
""",
        "h9_digest",
        False,
    ),
    (
        "ops/salt/pillar/munge.sls",
        """munge:
  # base64 of the cluster munge key (dd if=/dev/urandom bs=1 count=1024 | base64)
  key_b64: {V}
""",
        "h9_b64",
        True,
    ),
    (
        "ops/sops/secrets.enc.yaml",
        """slurmdbd:
    storage_pass: {V}
globus:
    client_secret: {V2}
sops:
    kms: []
    age:
        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    lastmodified: "2024-05-02T09:14:55Z"
    version: 3.8.1
""",
        "h9_sops",
        False,
    ),
    # ---------------------------------------------------------------- GitLab CI for theses
    (
        "thesis/.gitlab-ci.yml",
        """image: registry.gitlab.univ.internal/rcs/texlive:2024

stages: [build, publish]

build-pdf:
  stage: build
  script:
    - latexmk -pdf -interaction=nonstopmode thesis.tex
  artifacts:
    paths: [thesis.pdf]

publish:
  stage: publish
  variables:
    OVERLEAF_GIT_TOKEN: "{V}"
  script:
    - git push https://git:${OVERLEAF_GIT_TOKEN}@git.overleaf.com/65f1a2b3c4d5e6f7a8b9c0d1 HEAD:master
  only: [main]
""",
        "h9_secret",
        True,
    ),
    (
        "thesis/.gitlab-ci.mirror.yml",
        """mirror-to-github:
  stage: publish
  script:
    - git remote add gh https://{V}@github.com/univ-theses/jdoe-phd.git
    - git push gh HEAD:main --force
""",
        "h9_github",
        True,
    ),
    (
        "thesis/.gitlab-ci.safe.yml",
        """mirror-to-github:
  stage: publish
  script:
    - git remote add gh https://oauth2:{V}@github.com/univ-theses/jdoe-phd.git
    - git push gh HEAD:main
  variables:
    GIT_DEPTH: "0"
""",
        "h9_env_ref",
        False,
    ),
    (
        "thesis/.gitlab-ci.cache.yml",
        """build-pdf:
  stage: build
  cache:
    key: texlive-{V}
    paths: [.texmf-var/]
  script:
    - latexmk -pdf thesis.tex
  # last green pipeline: {V2}
""",
        "h9_sha",
        False,
    ),
    (
        "thesis/.latexmkrc",
        """$pdf_mode = 1;
$bibtex_use = 2;
# zotero better-bibtex auto-export pulls from the group library
$ENV{'ZOTERO_API_KEY'} = '{V}';
$ENV{'ZOTERO_GROUP'} = '4821337';
""",
        "h9_zotero",
        True,
    ),
    (
        "thesis/scripts/fetch_bib.py",
        """import os
import requests

API = "https://api.zotero.org/groups/4821337/items"
key = {V}
r = requests.get(API, params={"format": "bibtex", "limit": 100}, headers={"Zotero-API-Key": key})
open("references.bib", "w").write(r.text)
""",
        "h9_env_ref_py",
        False,
    ),
    # ---------------------------------------------------------------- course material
    (
        "teaching/db101/lab03.md",
        """# Lab 3: Connecting to PostgreSQL

Each group gets its own database on `db101.cs.univ.internal`.

```bash
psql "postgresql://group07:{V}@db101.cs.univ.internal:5432/group07"
```

If the connection is refused, check you are on the campus VPN.
""",
        "h9_url_pw",
        True,
    ),
    (
        "teaching/db101/lab03-template.md",
        """# Lab 3: Connecting to PostgreSQL

```bash
psql "postgresql://groupNN:{V}@db101.cs.univ.internal:5432/groupNN"
```

Your password is on the sheet handed out in the first lab.
""",
        "h9_placeholder",
        False,
    ),
    (
        "teaching/db101/slides/week4.tex",
        """\\begin{frame}[fragile]{JDBC in practice}
\\begin{lstlisting}[language=Java]
Connection c = DriverManager.getConnection(
    "jdbc:postgresql://db101.cs.univ.internal/demo",
    "demo", "{V}");
\\end{lstlisting}
\\pause
Never hard-code passwords in real code!
\\end{frame}
""",
        "h9_weak",
        True,
    ),
    (
        "teaching/db101/slides/week5.tex",
        """\\begin{frame}{Storing passwords}
\\begin{itemize}
  \\item Never store plain text; store a slow salted hash.
  \\item Example bcrypt hash from our demo table: \\texttt{{V}}
  \\item Column: \\texttt{password\\_hash VARCHAR(60) NOT NULL}
\\end{itemize}
\\end{frame}
""",
        "h9_bcrypt",
        False,
    ),
    (
        "teaching/websec/assignment2/README.md",
        """# Assignment 2: breaking a weak login

The vulnerable app runs at http://websec-lab.cs.univ.internal:8080.

Log in first with the TA account to confirm the app works:

- username: `ta_demo`
- password: `{V}`

Then find a way to log in as `admin` without knowing the password.
""",
        "h9_weak",
        True,
    ),
    (
        "teaching/websec/assignment2/app/seed.sql",
        """INSERT INTO users (username, password_md5, role) VALUES
  ('admin',   '{V}', 'admin'),
  ('ta_demo', '{V2}', 'user');
-- md5 is intentionally weak here: that is the point of the assignment
""",
        "h9_md5",
        False,
    ),
    (
        "teaching/websec/assignment3/sample_request.http",
        """### Get the course list as a student
GET http://websec-lab.cs.univ.internal:8081/api/courses
Authorization: Bearer {V}
Accept: application/json
""",
        "h9_jwt",
        True,
    ),
    (
        "teaching/websec/assignment3/sample_request_doc.http",
        """### Get the course list as a student (paste your own token from /login)
GET http://websec-lab.cs.univ.internal:8081/api/courses
Authorization: Bearer {V}
Accept: application/json
""",
        "h9_truncated",
        False,
    ),
    (
        "teaching/python101/week6/solutions/api_client.py",
        """\"\"\"Model solution, week 6: calling a REST API with basic auth.\"\"\"
import requests
from requests.auth import HTTPBasicAuth

resp = requests.get(
    "https://py101-api.cs.univ.internal/grades",
    auth=HTTPBasicAuth("py101_marker", "{V}"),
    timeout=10,
)
print(resp.json())
""",
        "h9_password",
        True,
    ),
    (
        "teaching/python101/week6/exercise.py",
        """\"\"\"Week 6 exercise: read the password from the environment, not the code.\"\"\"
import os
import requests

password = {V}
resp = requests.get("https://py101-api.cs.univ.internal/grades", auth=("py101_student", password))
""",
        "h9_env_ref_py",
        False,
    ),
    (
        "teaching/python101/week6/test_validation.py",
        """from validators import check_password


def test_rejects_short():
    result = check_password("x")
    assert not result.ok
    assert result.message == "Password {V}"
""",
        "h9_rule_text",
        False,
    ),
    (
        "teaching/sysadmin/lab-vm-notes.md",
        """# Sysadmin course VM

Import `sysadmin-2024.ova` into VirtualBox. Log in as `student` with password
`{V}`, then `sudo -i` (same password). The root account is locked.

Change it on first boot with `passwd`.
""",
        "h9_weak",
        True,
    ),
    (
        "teaching/sysadmin/curl-examples.sh",
        """#!/bin/sh
# week 9 demo: HTTP basic auth against the course Nexus
curl -fsS -H "Authorization: Basic {V}" \\
    https://nexus.cs.univ.internal/service/rest/v1/repositories
""",
        "h9_basic",
        True,
    ),
    (
        "teaching/sysadmin/ssh/lab_id_rsa",
        """{V}
""",
        "h9_rsa",
        True,
    ),
    (
        "teaching/sysadmin/ssh/lab_id_ed25519.pub",
        """{V}
""",
        "h9_pubkey",
        False,
    ),
    # ---------------------------------------------------------------- README / wiki
    (
        "wiki/hpc/getting-started.md",
        """# Getting started on Tamarack

1. Request an account at https://rc.univ.edu/accounts.
2. Log in: `ssh <NetID>@login.hpc.univ.edu` using your NetID password.
3. Your home quota is 50 GB; use `/scratch/$USER` for job data.

Two-factor prompt text you will see: "{V}"
""",
        "h9_text",
        False,
    ),
    (
        "wiki/hpc/jupyterhub.md",
        """# JupyterHub on the cluster

The hub talks to Slurm through batchspawner. Admin notes:

    c.JupyterHub.cookie_secret = bytes.fromhex('{V}')
    c.ConfigurableHTTPProxy.auth_token = '{V2}'

Restart with `systemctl restart jupyterhub`.
""",
        "h9_hex",
        True,
    ),
    (
        "wiki/hpc/jupyterhub-config.md",
        """# JupyterHub config (as deployed)

    c.JupyterHub.cookie_secret_file = '{V}'
    c.ConfigurableHTTPProxy.auth_token = os.environ['CONFIGPROXY_AUTH_TOKEN']
""",
        "h9_file_ref",
        False,
    ),
    (
        "wiki/web/wordpress-handover.md",
        """# Library WordPress handover (June)

- wp-admin: https://library.univ.edu/wp-admin
- admin user: `libweb`, password `{V}` (rotate after handover!)
- hosting: mysql-web.univ.internal, db `wp_library`
""",
        "h9_password",
        True,
    ),
    (
        "wiki/web/wordpress-handover-2.md",
        """# Library WordPress handover (December)

- wp-admin: https://library.univ.edu/wp-admin
- admin user: `libweb`, password: {V}
- database credentials: see `web/wordpress` in the team vault
""",
        "h9_vault_hint",
        False,
    ),
    (
        "wiki/data/s3-quickstart.md",
        """# Research object storage quick start

Your keys are shown once at https://rc.univ.edu/s3. In examples we use AWS's documented
placeholder values:

    aws configure set aws_access_key_id {V}
    aws --endpoint-url https://s3.rc.univ.internal s3 ls
""",
        "h9_example",
        False,
    ),
    (
        "wiki/data/s3-troubleshooting.md",
        """# S3 troubleshooting (ticket RC-2291)

User reported SignatureDoesNotMatch. Their config had:

    aws_access_key_id = {V}
    aws_secret_access_key = {V2}

Key pair was disabled after the ticket; new pair issued.
""",
        "h9_aws_id",
        True,
    ),
    (
        "wiki/identity/eduroam-troubleshooting.md",
        """# eduroam: common errors

| Message | Meaning |
|---------|---------|
| "{V}" | wrong NetID password |
| "{V2}" | account locked after 10 failures |

Ask the user to reset at https://password.univ.edu.
""",
        "h9_text",
        False,
    ),
    (
        "wiki/helpdesk/ticket-templates.md",
        """# Ticket reply templates

**Password reset done**

> Hi, your temporary NetID password is `{V}`. You will be asked to change it at first
> login at https://password.univ.edu.
""",
        "h9_password",
        True,
    ),
    (
        "wiki/helpdesk/db-schema.md",
        """# Account DB columns (read-only view for the helpdesk)

| column | type | note |
|--------|------|------|
| netid | varchar(16) | |
| {V} | varchar(128) | never shown in the UI |
| {V2} | timestamptz | |
""",
        "h9_colname",
        False,
    ),
    (
        "wiki/lims/bridge-setup.md",
        """# Setting up a new instrument bridge

Example call to test the LIMS API from the instrument PC:

    curl -H "X-Api-Key: {V}" https://lims.bio.univ.internal/api/v2/ping

Replace the key with the one generated for the instrument.
""",
        "h9_secret",
        True,
    ),
]
