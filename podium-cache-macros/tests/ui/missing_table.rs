use podium_cache_core::Cacheable;

#[derive(Cacheable)]
struct Event {
    id: String,
}

fn main() {}
