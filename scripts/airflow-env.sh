# Source this to use the checkout's embedded Airflow: `. scripts/airflow-env.sh`
_seam_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$_seam_root/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$_seam_root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export SEAM_CONFIG="${SEAM_CONFIG:-$_seam_root/config/demo.yml}"
unset _seam_root
