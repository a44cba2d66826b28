//! `schedule:` -> firing times: cron and daily/hourly/weekly/monthly/minutes_interval, DST-correct; pure.
