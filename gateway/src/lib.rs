//! The CPIM gateway: router, presence state, durable store, config, admin API.
