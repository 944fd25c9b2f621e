-- Dead letters by rejection reason (Contract 1), all time.
SELECT reason, count() AS dead_letters
FROM {db}.dead_letters
GROUP BY reason
ORDER BY dead_letters DESC, reason
