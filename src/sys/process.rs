//! TODO: fork, setsid, setuid/setgid/setgroups, raw clone (being written)
