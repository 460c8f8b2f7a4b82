export function Deals() { return <div class="screen"><h1>Deals</h1></div> }
