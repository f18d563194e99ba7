-- Acks many leased tasks at once. ARGV[2]: now, ARGV[3]: retention ms of
-- a succeeded task, then pairs of id and token.
return ack_all(tonumber(ARGV[2]), ARGV[3], 4)
