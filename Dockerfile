# seam on the official Apache Airflow 3.3 image, installed from the project's lock file.
# The wheel carries the SQL migrations, the expectation suites and the report templates.
FROM apache/airflow:3.3.2-python3.11

USER airflow
WORKDIR /opt/seam
COPY --chown=airflow:root constraints.txt pyproject.toml README.md ./
COPY --chown=airflow:root pipelines ./pipelines
RUN pip install --no-cache-dir -c constraints.txt .
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root config ./config

ENV SEAM_CONFIG=/opt/seam/config/compose.yml \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags
