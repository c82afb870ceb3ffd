use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events")]
struct Event {
    record_id: String,
    name: String,
}

fn main() {}
