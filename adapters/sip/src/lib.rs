//! SIP/SIMPLE adapter: SIP codec, transactions, MESSAGE, SUBSCRIBE/NOTIFY, PUBLISH, registrar (sans-IO core plus a tokio layer).
