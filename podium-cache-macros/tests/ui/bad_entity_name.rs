use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events", entity = "my events")]
struct Event {
    id: String,
}

fn main() {}
