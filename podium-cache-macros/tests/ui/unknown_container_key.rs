use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events", tabel = "Events")]
struct Event {
    id: String,
}

fn main() {}
