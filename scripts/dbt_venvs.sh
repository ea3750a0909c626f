#!/usr/bin/env bash
# Builds the cached dbt venvs .venvs/dbt-1.X from dbt-pgstream/integration_tests/requirements/dbt-1.X.txt,
# only when a venv is missing or its requirements file changed (sha256 stamp).
# Usage: scripts/dbt_venvs.sh [1.8 1.9 ...]   (default: every requirements file)
source "$(dirname "$0")/lib.sh"

REQ_DIR="${ROOT}/dbt-pgstream/integration_tests/requirements"
VENVS_DIR="${ROOT}/.venvs"

versions=("$@")
if ((${#versions[@]} == 0)); then
    for f in "${REQ_DIR}"/dbt-*.txt; do
        v="$(basename "$f" .txt)"
        versions+=("${v#dbt-}")
    done
fi

mkdir -p "${VENVS_DIR}"
for v in "${versions[@]}"; do
    req="${REQ_DIR}/dbt-${v}.txt"
    venv="${VENVS_DIR}/dbt-${v}"
    [[ -f "${req}" ]] || { echo "dbt_venvs: no requirements file ${req}" >&2; exit 2; }
    want="$(sha256sum "${req}" | cut -d' ' -f1)"
    stamp="${venv}/.requirements.sha256"
    if [[ -x "${venv}/bin/dbt" && "$(cat "${stamp}" 2>/dev/null)" == "${want}" ]]; then
        say "dbt ${v}: ${venv} up to date"
        continue
    fi
    say "dbt ${v}: creating ${venv} from ${req#"${ROOT}/"}"
    rm -rf "${venv}"
    python3 -m venv "${venv}"
    log="${venv}/install.log"
    if ! { "${venv}/bin/pip" install -q --upgrade pip && "${venv}/bin/pip" install -q -r "${req}"; } >"${log}" 2>&1; then
        tail -30 "${log}" >&2
        echo "dbt_venvs: installing ${req} failed; full log in ${log}" >&2
        exit 1
    fi
    echo "${want}" >"${stamp}"
    say "dbt ${v}: $("${venv}/bin/python" -c 'import importlib.metadata as m; print("dbt-core", m.version("dbt-core"), "+ dbt-postgres", m.version("dbt-postgres"))')"
done
