-- The report's headline: touchpoints, dead letters, live customers, churn alerts, live journeys.
SELECT
    (SELECT count() FROM {db}.touchpoints FINAL) AS touchpoints,
    (SELECT count() FROM {db}.dead_letters) AS dead_letters,
    (SELECT count() FROM {db}.customer_experience FINAL WHERE merged_into = '') AS customers,
    (SELECT count() FROM {db}.churn_alerts FINAL) AS alerts,
    (SELECT count() FROM {db}.journeys FINAL WHERE merged_into = '') AS journeys
